import { afterEach, describe, expect, it } from 'vitest';
import type { SluiceConfig, SluiceEvent } from '@sluice/contracts';
import { eventually } from '@sluice/bus/testing';
import { createLogger } from '@sluice/telemetry';
import { BACKLOG_STALE_MS, decideAdmission, limitsOf, type Backlog } from './overload.js';
import type { BacklogReading } from './overload-backlog.js';
import { MAX_RECORDING, openOverloadGate, type OverloadGate } from './overload-gate.js';

const NOW = 1_700_000_000_000;
const LIMITS = { maxInFlight: 3, maxBacklog: 100 };
const fresh = (pending: number, drainPerSecond?: number): Backlog => ({ at: NOW - 100, pending, ...(drainPerSecond !== undefined ? { drainPerSecond } : {}) });

describe('decideAdmission', () => {
  it('admits while fewer than maxInFlight are in flight and the backlog is at or under its bound', () => {
    expect(decideAdmission(0, undefined, LIMITS, NOW)).toEqual({ admit: true });
    expect(decideAdmission(2, fresh(100), LIMITS, NOW)).toEqual({ admit: true });
  });

  it('sheds the request past maxInFlight, Retry-After one second', () => {
    const a = decideAdmission(3, fresh(0), LIMITS, NOW);
    expect(a).toMatchObject({ admit: false, bound: 'in_flight', retryAfterMs: 1000 });
    expect(!a.admit && a.message).toContain('3 requests at once');
  });

  it('sheds on a fresh backlog over maxBacklog, Retry-After the time the invoker takes to work off the excess', () => {
    // 50 over at 25 a second: 2 s
    const a = decideAdmission(0, fresh(150, 25), LIMITS, NOW);
    expect(a).toMatchObject({ admit: false, bound: 'backlog', retryAfterMs: 2000 });
    expect(!a.admit && a.message).toContain('150 requests are waiting');
  });

  it('keeps the backlog Retry-After between 1 s and 60 s, 5 s when the drain rate is unknown or nil', () => {
    expect(decideAdmission(0, fresh(101, 1000), LIMITS, NOW)).toMatchObject({ retryAfterMs: 1000 });
    expect(decideAdmission(0, fresh(100_000, 1), LIMITS, NOW)).toMatchObject({ retryAfterMs: 60_000 });
    expect(decideAdmission(0, fresh(150), LIMITS, NOW)).toMatchObject({ retryAfterMs: 5000 });
    expect(decideAdmission(0, fresh(150, 0), LIMITS, NOW)).toMatchObject({ retryAfterMs: 5000 });
  });

  it('judges no stale reading: a backlog that cannot be read sheds nothing', () => {
    expect(decideAdmission(0, { at: NOW - BACKLOG_STALE_MS, pending: 1e6 }, LIMITS, NOW)).toEqual({ admit: true });
  });

  it('has no backlog bound at maxBacklog 0', () => {
    expect(decideAdmission(0, fresh(1e6), { ...LIMITS, maxBacklog: 0 }, NOW)).toEqual({ admit: true });
  });

  it('names the in-flight bound when both are over', () => {
    expect(decideAdmission(3, fresh(1e6), LIMITS, NOW)).toMatchObject({ bound: 'in_flight' });
  });

  it('takes the config defaults when the keys are absent: 2048 in flight, a backlog of 20,000', () => {
    expect(limitsOf({} as SluiceConfig['ingress'])).toEqual({ maxInFlight: 2048, maxBacklog: 20_000 });
    expect(limitsOf({ maxInFlight: 5, maxBacklog: 0 } as SluiceConfig['ingress'])).toEqual({ maxInFlight: 5, maxBacklog: 0 });
  });
});

describe('the overload gate', () => {
  let gate: OverloadGate | undefined;
  afterEach(() => gate?.stop());

  const event = (requestId: string) => ({ requestId }) as SluiceEvent<'chat.rejected'>;
  const unread = () => Promise.reject(new Error('not read'));

  function open(ingress: Partial<SluiceConfig['ingress']>, read: () => Promise<BacklogReading>, publish = () => Promise.resolve()) {
    const config = { ingress } as SluiceConfig;
    gate = openOverloadGate({ config: () => config, readBacklog: read, publish, log: createLogger('ingress-test', 'silent'), now: Date.now });
    return gate;
  }

  it('counts places taken and released (each release once) and sheds at the bound', () => {
    const g = open({ maxInFlight: 2, maxBacklog: 0 }, unread);
    const a = g.enter(Date.now());
    const b = g.enter(Date.now());
    expect([a.kind, b.kind, g.inFlight()]).toEqual(['admitted', 'admitted', 2]);
    expect(g.enter(Date.now())).toMatchObject({ kind: 'shed', bound: 'in_flight' });
    if (a.kind !== 'admitted') throw new Error('admitted above');
    a.release();
    a.release();
    expect(g.inFlight()).toBe(1);
    expect(g.enter(Date.now()).kind).toBe('admitted');
  });

  it('sheds on the backlog it read, and stops once a reading is back under the bound', async () => {
    let pending = 500;
    const g = open({ maxInFlight: 10, maxBacklog: 100 }, () => Promise.resolve({ at: Date.now(), pending, invokerDelivered: 0 }));
    await eventually(() => expect(g.enter(Date.now())).toMatchObject({ kind: 'shed', bound: 'backlog' }), 3000);
    expect(g.backlogOver(Date.now())).toBe(true);
    pending = 100;
    await eventually(() => expect(g.backlogOver(Date.now())).toBe(false), 3000);
    expect(g.enter(Date.now()).kind).toBe('admitted');
  });

  it('sheds nothing on the backlog while it cannot be read', async () => {
    let reads = 0;
    const g = open({ maxInFlight: 10, maxBacklog: 1 }, () => {
      reads++;
      return unread();
    });
    await eventually(() => expect(reads).toBeGreaterThan(1), 3000);
    expect(g.enter(Date.now()).kind).toBe('admitted');
    expect(g.backlogOver(Date.now())).toBe(false);
  });

  it('does not read the backlog while maxBacklog is 0', async () => {
    let reads = 0;
    open({ maxInFlight: 10, maxBacklog: 0 }, () => {
      reads++;
      return Promise.resolve({ at: Date.now(), pending: 0, invokerDelivered: 0 });
    });
    await new Promise((r) => setTimeout(r, 600));
    expect(reads).toBe(0);
  });

  it('publishes at most MAX_RECORDING shed events at once and drops the rest instead of queueing them', async () => {
    const waiting: Array<() => void> = [];
    const g = open({ maxInFlight: 10, maxBacklog: 0 }, unread, () => new Promise<void>((resolve) => waiting.push(resolve)));
    for (let i = 0; i < MAX_RECORDING + 10; i++) g.record(event(`req_${i}`), '');
    expect(waiting.length).toBe(MAX_RECORDING);
    waiting.splice(0).forEach((resolve) => resolve());
    await new Promise((r) => setTimeout(r, 0));
    // the stream caught up: the next one is published again
    g.record(event('req_after'), '');
    expect(waiting.length).toBe(1);
  });
});
