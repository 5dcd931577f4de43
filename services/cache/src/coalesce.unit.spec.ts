import { describe, expect, it } from 'vitest';
import { answer } from '@sluice/contracts/testing';
import { decideJoin, type InflightRecord } from './coalesce-join.js';

const NOW = 1_700_000_000_000;
const TIMEOUT = 30_000;
const leading: InflightRecord = { leader: 'r1', at: NOW - 1_000, deadline: NOW + 60_000, state: 'leading' };
const reply = answer('gpt-4o-mini', 20, 2, 'Paris.');
const answered: InflightRecord = { ...leading, state: 'answered', answer: reply };
const me = { requestId: 'r2', deadline: NOW + 10_000 };

describe('decideJoin', () => {
  it('given no record, then the joiner creates one', () => {
    expect(decideJoin(undefined, me, NOW, TIMEOUT)).toEqual({ step: 'create' });
  });

  it("given the joiner's own record (a redelivered chat.admitted), then it leads again, answered or not", () => {
    expect(decideJoin(leading, { ...me, requestId: 'r1' }, NOW, TIMEOUT)).toEqual({ step: 'lead' });
    expect(decideJoin(answered, { ...me, requestId: 'r1' }, NOW, TIMEOUT)).toEqual({ step: 'lead' });
  });

  it("given a live leader, then the joiner follows until the first of its own deadline, the leader's timeout and the leader's deadline", () => {
    expect(decideJoin(leading, me, NOW, TIMEOUT)).toEqual({ step: 'follow', until: NOW + 10_000 });
    expect(decideJoin(leading, { ...me, deadline: NOW + 120_000 }, NOW, TIMEOUT)).toEqual({ step: 'follow', until: leading.at + TIMEOUT });
    const shortLeader = { ...leading, deadline: NOW + 5_000 };
    expect(decideJoin(shortLeader, me, NOW, TIMEOUT)).toEqual({ step: 'follow', until: NOW + 5_000 });
  });

  it('given the answer of the leader it followed, then that answer', () => {
    expect(decideJoin(answered, { ...me, followed: 'r1' }, NOW, TIMEOUT)).toEqual({ step: 'answered', answer: reply });
  });

  it('given an answer of a leader it never followed (finished before it joined, not cached), then it takes over', () => {
    expect(decideJoin(answered, me, NOW, TIMEOUT)).toEqual({ step: 'take-over', reason: 'leader r1 had answered before this request joined' });
    expect(decideJoin(answered, { ...me, followed: 'r0' }, NOW, TIMEOUT).step).toBe('take-over');
  });

  it('given a leader that gave no answer in the timeout, then it takes over', () => {
    const old = { ...leading, at: NOW - TIMEOUT };
    expect(decideJoin(old, me, NOW, TIMEOUT)).toEqual({ step: 'take-over', reason: 'leader r1 gave no answer in 30000 ms' });
  });

  it('given a leader past its own deadline, then it takes over', () => {
    expect(decideJoin({ ...leading, deadline: NOW }, me, NOW, TIMEOUT)).toEqual({ step: 'take-over', reason: 'leader r1 passed its deadline' });
  });

  it('given a leader known to have ended without an answer, then it takes over at once', () => {
    expect(decideJoin(leading, me, NOW, TIMEOUT, 'chat.failed')).toEqual({ step: 'take-over', reason: 'leader r1 ended without an answer (chat.failed)' });
  });

  it('given a live leader and its own deadline reached, then it expires', () => {
    expect(decideJoin(leading, { ...me, deadline: NOW }, NOW, TIMEOUT)).toEqual({ step: 'expire' });
  });
});
