import { describe, expect, it } from 'vitest';
import { makeEvent, ServiceName } from '@sluice/contracts';
import { requestContext } from '@sluice/contracts/testing';
import { asStoredAnswer, attemptSuffix, decideDelivery, mayHaveAnswer, type StoredAnswer } from './replay.js';

const failed = makeEvent(
  'chat.failed',
  { requestId: 'r1', tenant: 'acme', service: ServiceName.Invoker, at: 1_000, reason: 'test' },
  { code: 'upstream_failed', status: 502, message: 'down', attempts: 2, receivedAt: 900 },
);
const stored: StoredAnswer = {
  requestId: 'r1',
  tenant: 'acme',
  result: { requestId: 'r1', error: { code: 'upstream_failed', message: 'down', status: 502 } },
  completedAt: 1_000,
  event: failed,
};

describe('decideDelivery', () => {
  it('replays a stored answer on a redelivery', () => {
    expect(decideDelivery(stored, { deliveryCount: 2 })).toBe('replay');
    expect(decideDelivery(stored, { deliveryCount: 7 })).toBe('replay');
  });
  it('invokes on a redelivery when nothing was stored (the first delivery died before answering)', () => {
    expect(decideDelivery(undefined, { deliveryCount: 2 })).toBe('invoke');
  });
  it('invokes on a first delivery, stored answer or not', () => {
    expect(decideDelivery(stored, { deliveryCount: 1 })).toBe('invoke');
    expect(decideDelivery(stored, {})).toBe('invoke');
    expect(decideDelivery(undefined, { deliveryCount: 1 })).toBe('invoke');
  });
});

describe('mayHaveAnswer', () => {
  it('asks the results bucket only on a redelivery', () => {
    expect(mayHaveAnswer({ deliveryCount: 1 })).toBe(false);
    expect(mayHaveAnswer({})).toBe(false);
    expect(mayHaveAnswer({ deliveryCount: 2 })).toBe(true);
  });
});

describe('attemptSuffix', () => {
  it('keeps plain attempt numbers on the first delivery', () => {
    expect(attemptSuffix({ deliveryCount: 1 }, 1)).toBe(1);
    expect(attemptSuffix({}, 3)).toBe(3);
  });
  it("prefixes the delivery count afterwards, so ids differ from the first delivery's", () => {
    expect(attemptSuffix({ deliveryCount: 2 }, 1)).toBe('2.1');
    expect(attemptSuffix({ deliveryCount: 2 }, 2)).toBe('2.2');
    expect(attemptSuffix({ deliveryCount: 3 }, 1)).toBe('3.1');
  });
  it('gives event ids that makeEvent keeps apart', () => {
    const id = (suffix: string | number) =>
      makeEvent(
        'invoke.attempted',
        { requestId: 'r1', tenant: 'acme', service: ServiceName.Invoker, at: 0, reason: '', suffix },
        { attempt: 1, model: 'm', deployment: 'd', ok: true, latencyMs: 1 },
      ).id;
    expect(id(attemptSuffix({ deliveryCount: 1 }, 1))).toBe('r1:invoke.attempted:1');
    expect(id(attemptSuffix({ deliveryCount: 2 }, 1))).toBe('r1:invoke.attempted:2.1');
  });
});

describe('asStoredAnswer', () => {
  it('reads back what the invoker stores', () => {
    expect(asStoredAnswer(JSON.parse(JSON.stringify(stored)))).toEqual(stored);
  });
  it('reads back a cancelled request too', () => {
    const usage = { prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 };
    const event = makeEvent(
      'chat.cancelled',
      { requestId: 'r1', tenant: 'acme', service: ServiceName.Invoker, at: 1_000, reason: 'test' },
      { ctx: requestContext(undefined, { receivedAt: 900 }), model: 'm', deployment: 'd', attempts: 1, usage, counted: true },
    );
    const cancelled: StoredAnswer = { ...stored, event, result: { requestId: 'r1', error: { code: 'request_cancelled', message: 'gone', status: 499 } } };
    expect(asStoredAnswer(JSON.parse(JSON.stringify(cancelled)))).toEqual(cancelled);
  });
  it('takes a damaged or foreign entry for none, so the redelivery calls again instead of replaying it', () => {
    expect(asStoredAnswer(undefined)).toBeUndefined();
    expect(asStoredAnswer({ ...stored, event: { ...failed, data: {} } })).toBeUndefined();
    expect(
      asStoredAnswer({
        ...stored,
        event: makeEvent('circuit.closed', { requestId: 'r1', tenant: 'acme', service: ServiceName.Invoker, at: 1, reason: 't' }, { deployment: 'd' }),
      }),
    ).toBeUndefined();
    expect(asStoredAnswer({ ...stored, result: { requestId: 'r1' } })).toBeUndefined();
    expect(asStoredAnswer({ ...stored, result: { requestId: 'r1', model: 'm', chunk: { object: 'chat.completion.chunk' } } })).toBeUndefined();
    expect(asStoredAnswer({ ...stored, completedAt: '1000' })).toBeUndefined();
  });
});
