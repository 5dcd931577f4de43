import { describe, expect, it } from 'vitest';
import { circuitRecordSignal } from './circuits-kv.js';
import { asLease, leads, leaseMove } from './lease.js';
import { isBurning } from './poll.js';

const T0 = 1_700_000_000_000;

describe('lease', () => {
  it('is created when there is none, renewed by its holder, taken by another only once it ran out', () => {
    expect(leaseMove(undefined, 'a', T0)).toBe('create');
    expect(leaseMove({ holder: 'a', until: T0 + 10 }, 'a', T0)).toBe('renew');
    expect(leaseMove({ holder: 'a', until: T0 - 10 }, 'a', T0)).toBe('renew');
    expect(leaseMove({ holder: 'a', until: T0 + 1 }, 'b', T0)).toBe('wait');
    expect(leaseMove({ holder: 'a', until: T0 }, 'b', T0)).toBe('take');
  });

  it('a holder stops leading a third of the lease before its end, before anyone may take it', () => {
    expect(leads(T0 + 900, T0, 900)).toBe(true);
    expect(leads(T0 + 900, T0 + 599, 900)).toBe(true);
    expect(leads(T0 + 900, T0 + 600, 900)).toBe(false);
    expect(leads(undefined, T0, 900)).toBe(false);
  });

  it('reads only lease-shaped records', () => {
    expect(asLease({ holder: 'a', until: 5 })).toEqual({ holder: 'a', until: 5 });
    expect(asLease({ holder: 'a' })).toBeUndefined();
    expect(asLease(null)).toBeUndefined();
  });
});

describe('budget burn', () => {
  const day = { startsAt: T0, resetsAt: T0 + 24 * 3600_000 };
  it('burns when the share spent is ahead of the share of the window gone', () => {
    expect(isBurning(60, 100, day, T0 + 12 * 3600_000)).toBe(true);
    expect(isBurning(40, 100, day, T0 + 12 * 3600_000)).toBe(false);
  });

  it('early in the window, only a quarter of the limit spent counts as a burn', () => {
    expect(isBurning(10, 100, day, T0 + 3600_000)).toBe(false);
    expect(isBurning(25, 100, day, T0 + 3600_000)).toBe(true);
  });
});

describe('circuit records', () => {
  it('open counts from openedAt for the open time; half-open and closed do not count; other shapes are ignored', () => {
    expect(circuitRecordSignal('d', { state: 'open', openedAt: T0 }, T0 + 5, 30_000)).toEqual({
      kind: 'circuitOpened',
      deployment: 'd',
      at: T0,
      openForMs: 30_000,
    });
    expect(circuitRecordSignal('d', { state: 'open' }, T0 + 5, 30_000)).toMatchObject({ at: T0 + 5 });
    expect(circuitRecordSignal('d', { state: 'half-open', openedAt: T0 }, T0 + 5, 30_000)).toEqual({ kind: 'circuitClosed', deployment: 'd', at: T0 + 5 });
    expect(circuitRecordSignal('d', { state: 'closed' }, T0 + 5, 30_000)?.kind).toBe('circuitClosed');
    expect(circuitRecordSignal('d', { state: 7 }, T0, 30_000)).toBeUndefined();
    expect(circuitRecordSignal('d', 'open', T0, 30_000)).toBeUndefined();
  });
});
