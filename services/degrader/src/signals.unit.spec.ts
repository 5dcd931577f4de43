import { describe, expect, it } from 'vitest';
import type { SluiceEvent } from '@sluice/contracts';
import { decide, evolve, initialState, type DegraderState, type Signal } from './degrader.js';
import { testConfig } from './fixtures.js';

const T0 = 1_700_000_000_000;
// window 30 s, min 10 samples, enter [0.2, 0.5, 0.9], hysteresis 0.1, hold 10 s; the new signals on
const config = testConfig({ latencyP95TargetMs: 1000, backlogMax: 100, budgetBurnShare: 0.5, openCircuitShare: 0.5, pollMs: 2000 });

const okAttempts = (at: number, n: number, latencyMs: number): Signal => ({
  kind: 'attempts',
  samples: Array.from({ length: n }, () => ({ at, ok: true, latencyMs })),
});
const given = (...signals: Signal[]) => signals.reduce(evolve, initialState(T0));
const atLevel = (level: number, since = T0): Signal => ({ kind: 'restored', state: { level, since, reason: 'test' } });
function step(state: DegraderState, now: number): [DegraderState, SluiceEvent<'degrade.changed'> | undefined] {
  const s = evolve(state, { kind: 'tick', windowStart: now - config.degrader.windowMs });
  const event = decide(s, config, now);
  return [event ? evolve(s, { kind: 'changed', event }) : s, event];
}

describe('p95 latency against its target', () => {
  it('given every attempt ok but the p95 at the target, then level 1, caused by latency alone', () => {
    const event = decide(given(okAttempts(T0, 20, 1000)), config, T0);
    expect(event?.data).toMatchObject({ from: 0, to: 1, signals: { failureRatio: 0, p95LatencyMs: 1000 } });
    expect(event?.data.causes).toEqual(['p95 latency 1000ms ≥ 1000ms']);
  });

  it('given twice the target, then level 2', () => {
    expect(decide(given(okAttempts(T0, 20, 2500)), config, T0)?.data.causes).toEqual(['p95 latency 2500ms ≥ twice the target 1000ms']);
  });

  it('given fewer attempts than minSamples, then latency is not judged', () => {
    expect(decide(given(okAttempts(T0, 9, 5000)), config, T0)).toBeUndefined();
  });

  it('holds level 1 while the p95 is within the hysteresis below the target, then lowers', () => {
    expect(decide(given(atLevel(1), okAttempts(T0 + 15_000, 20, 950)), config, T0 + 15_000)).toBeUndefined();
    const event = decide(given(atLevel(1), okAttempts(T0 + 15_000, 20, 850)), config, T0 + 15_000);
    expect(event?.data).toMatchObject({ from: 1, to: 0 });
    expect(event?.data.causes).toContain('p95 latency 850ms < 900ms');
  });

  it('with the target 0, latency is no signal', () => {
    expect(decide(given(okAttempts(T0, 20, 60_000)), testConfig(), T0)).toBeUndefined();
  });
});

describe('backlog', () => {
  it('given the request path backed up past the line, then level 1; past twice it, level 2', () => {
    const one = decide(given({ kind: 'backlog', backlog: { at: T0, pending: 150 } }), config, T0);
    expect(one?.data).toMatchObject({ to: 1, signals: { backlog: 150 } });
    expect(one?.data.causes).toEqual(['backlog 150 messages ≥ 100 messages']);
    expect(decide(given({ kind: 'backlog', backlog: { at: T0, pending: 200 } }), config, T0)?.data.to).toBe(2);
  });

  it('a reading older than three polls is not judged (the leader stopped reading it)', () => {
    expect(decide(given({ kind: 'backlog', backlog: { at: T0, pending: 500 } }), config, T0 + 6001)).toBeUndefined();
  });
});

describe('budget burn', () => {
  it('given half the tenant budgets on course to overrun, then level 1 (a cheaper model), never more', () => {
    const event = decide(given({ kind: 'budgets', budgets: { at: T0, burning: 2, total: 4 } }), config, T0);
    expect(event?.data).toMatchObject({ to: 1, signals: { budgetsBurning: 2, budgetBurnShare: 0.5 } });
    expect(event?.data.causes).toEqual(['2 of 4 tenant budgets on course to overrun their window (0.5 ≥ 0.5)']);
    expect(decide(given({ kind: 'budgets', budgets: { at: T0, burning: 4, total: 4 } }), config, T0)?.data.to).toBe(1);
  });

  it('holds level 1 in the hysteresis band', () => {
    expect(decide(given(atLevel(1), { kind: 'budgets', budgets: { at: T0 + 20_000, burning: 9, total: 20 } }), config, T0 + 20_000)).toBeUndefined();
    expect(decide(given(atLevel(1), { kind: 'budgets', budgets: { at: T0 + 20_000, burning: 7, total: 20 } }), config, T0 + 20_000)?.data.to).toBe(0);
  });
});

describe('circuits', () => {
  it('given half the deployments open, then level 1 with the share; all open, level 2', () => {
    const half = given({ kind: 'circuitOpened', deployment: 'sim-a', at: T0, openForMs: 30_000 });
    expect(decide(half, config, T0 + 1)?.data).toMatchObject({ to: 1, signals: { openCircuits: 1, openCircuitShare: 0.5 } });
    const all = evolve(half, { kind: 'circuitOpened', deployment: 'sim-b', at: T0, openForMs: 30_000 });
    expect(decide(all, config, T0 + 1)?.data.to).toBe(2);
  });
});

describe('several signals', () => {
  it('the highest level called for wins, and every line crossed is a cause', () => {
    const s = given(
      okAttempts(T0, 20, 1200),
      { kind: 'backlog', backlog: { at: T0, pending: 250 } },
      { kind: 'budgets', budgets: { at: T0, burning: 1, total: 1 } },
    );
    const event = decide(s, config, T0);
    expect(event?.data.to).toBe(2);
    expect(event?.data.causes).toEqual([
      'p95 latency 1200ms ≥ 1000ms',
      'backlog 250 messages ≥ twice the target 100 messages',
      '1 of 1 tenant budgets on course to overrun their window (1 ≥ 0.5)',
    ]);
  });

  it('lowers only when no signal holds the level: a calm failure ratio does not lower while the backlog stays', () => {
    let s = given(atLevel(1), okAttempts(T0 + 15_000, 20, 100), { kind: 'backlog', backlog: { at: T0 + 15_000, pending: 95 } });
    let e: SluiceEvent<'degrade.changed'> | undefined;
    [s, e] = step(s, T0 + 15_000);
    expect(e).toBeUndefined();
    [, e] = step(evolve(s, { kind: 'backlog', backlog: { at: T0 + 16_000, pending: 10 } }), T0 + 16_000);
    expect(e?.data).toMatchObject({ from: 1, to: 0 });
    expect(e?.reason).toBe(
      'failure ratio 0 over 20 attempts in 30s < 0.1 (entry 0.2 − hysteresis 0.1); p95 latency 100ms < 900ms; backlog 10 messages < 90 messages after 16s at level 1',
    );
  });

  it('does not flap: a signal hovering at its line moves the level once, and back only after the hold', () => {
    let s = initialState(T0);
    const levels: number[] = [];
    for (let t = T0; t < T0 + 60_000; t += 1000) {
      // the backlog alternates just above and just below its line every second
      s = evolve(s, { kind: 'backlog', backlog: { at: t, pending: (t / 1000) % 2 ? 101 : 99 } });
      let e: SluiceEvent<'degrade.changed'> | undefined;
      [s, e] = step(s, t);
      if (e) levels.push(e.data.to);
    }
    expect(levels).toEqual([1]);
  });
});
