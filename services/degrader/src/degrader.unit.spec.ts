import { describe, expect, it } from 'vitest';
import type { SluiceEvent } from '@sluice/contracts';
import { decide, degradeRecord, evolve, initialState, type DegraderState, type Signal } from './degrader.js';
import { levelOf } from './signals.js';
import { testConfig } from './fixtures.js';
import { p95, windowStats } from './window.js';

const T0 = 1_700_000_000_000;
const config = testConfig(); // window 30 s, min 10 samples, enter [0.2, 0.5, 0.9], hysteresis 0.1, hold 10 s

function attempts(at: number, ok: number, failed: number, latencyMs = 100): Signal {
  const samples = [...Array(ok).fill(true), ...Array(failed).fill(false)].map((isOk: boolean) => ({ at, ok: isOk, latencyMs }));
  return { kind: 'attempts', samples };
}
const given = (...signals: Signal[]) => signals.reduce(evolve, initialState(T0));
/** Decides at `now` and applies the change, as the loop does. */
function step(state: DegraderState, now: number): [DegraderState, SluiceEvent<'degrade.changed'> | undefined] {
  const s = evolve(state, { kind: 'tick', windowStart: now - config.degrader.windowMs });
  const event = decide(s, config, now);
  return [event ? evolve(s, { kind: 'changed', event }) : s, event];
}
const atLevel = (level: number, since = T0): Signal => ({ kind: 'restored', state: { level, since, reason: 'test' } });

describe('raising', () => {
  it('given fewer attempts than minSamples, then nothing changes however many fail', () => {
    expect(decide(given(attempts(T0, 0, 9)), config, T0)).toBeUndefined();
  });

  it('given a failure ratio over an entry ratio, then the level rises at once with the reason and signals', () => {
    const event = decide(given(attempts(T0, 4, 6, 250)), config, T0 + 1);
    expect(event).toMatchObject({
      type: 'degrade.changed',
      tenant: '_system',
      requestId: `degrade-${T0 + 1}`,
      id: `degrade-${T0 + 1}:degrade.changed`,
      data: { from: 0, to: 2, manual: false, signals: { failureRatio: 0.6, samples: 10, openCircuits: 0, p95LatencyMs: 250 } },
    });
    expect(event?.reason).toBe('failure ratio 0.6 over 10 attempts in 30s ≥ 0.5');
  });

  it('jumps straight past intermediate levels and never goes above 3 by itself', () => {
    expect(decide(given(atLevel(1), attempts(T0, 0, 20)), config, T0)?.data).toMatchObject({ from: 1, to: 3 });
  });

  it('given every deployment has an open circuit and no attempts, then at least cached-only (2)', () => {
    const s = given(
      { kind: 'circuitOpened', deployment: 'sim-a', at: T0, openForMs: 30_000 },
      { kind: 'circuitOpened', deployment: 'sim-b', at: T0, openForMs: 30_000 },
    );
    const event = decide(s, config, T0 + 1);
    expect(event?.data).toMatchObject({ from: 0, to: 2, signals: { openCircuits: 2 } });
    expect(event?.reason).toContain("every deployment's circuit is open (sim-a, sim-b)");
  });

  it('given only some circuits open, then no floor', () => {
    expect(decide(given({ kind: 'circuitOpened', deployment: 'sim-a', at: T0, openForMs: 30_000 }), config, T0 + 1)).toBeUndefined();
  });

  it('ignores a circuit event older than the one already seen', () => {
    const s = given(
      { kind: 'circuitOpened', deployment: 'sim-a', at: T0 + 10, openForMs: 30_000 },
      { kind: 'circuitClosed', deployment: 'sim-a', at: T0 },
      { kind: 'circuitOpened', deployment: 'sim-b', at: T0 + 10, openForMs: 30_000 },
    );
    expect(decide(s, config, T0 + 20)?.data.to).toBe(2);
  });
});

describe('lowering', () => {
  it('waits for the minimum hold even when every attempt succeeds', () => {
    const s = given(atLevel(2, T0), attempts(T0 + 1000, 20, 0));
    expect(decide(s, config, T0 + 9_999)).toBeUndefined();
    expect(decide(s, config, T0 + 10_000)?.data).toMatchObject({ from: 2, to: 1 });
  });

  it('keeps the level while the ratio sits in the hysteresis band below the entry ratio', () => {
    // level 2 is entered at 0.5; 0.45 calls for level 1 but is not below 0.5 - 0.1
    const inBand = given(atLevel(2), attempts(T0 + 20_000, 11, 9));
    expect(decide(inBand, config, T0 + 20_000)).toBeUndefined();
    const below = given(atLevel(2), attempts(T0 + 20_000, 13, 7)); // 0.35
    const event = decide(below, config, T0 + 20_000);
    expect(event?.data).toMatchObject({ from: 2, to: 1 });
    expect(event?.reason).toBe('failure ratio 0.35 over 20 attempts in 30s < 0.4 (entry 0.5 − hysteresis 0.1) after 20s at level 2');
  });

  it('lowers one level per hold, as samples age out of the window, until full service', () => {
    let s = given(attempts(T0, 0, 20));
    let e: SluiceEvent<'degrade.changed'> | undefined;
    [s, e] = step(s, T0);
    expect(e?.data.to).toBe(3);
    const levels: number[] = [];
    for (let t = T0 + 1000; t <= T0 + 120_000; t += 1000) {
      [s, e] = step(s, t);
      if (e) levels.push(e.data.to);
    }
    expect(levels).toEqual([2, 1, 0]);
    expect(s.samples).toEqual([]);
  });

  it('says when the ratio counts as 0 because there are too few attempts', () => {
    const event = decide(given(atLevel(1), attempts(T0, 0, 3)), config, T0 + 10_000);
    expect(event?.reason).toContain('only 3 attempts in 30s (fewer than 10, ratio counts as 0)');
  });

  it('lifts the all-circuits floor when the circuits close, or when their open time runs out', () => {
    const open = given(
      atLevel(2),
      { kind: 'circuitOpened', deployment: 'sim-a', at: T0, openForMs: 30_000 },
      { kind: 'circuitOpened', deployment: 'sim-b', at: T0, openForMs: 30_000 },
    );
    expect(decide(open, config, T0 + 20_000)).toBeUndefined();
    expect(decide(evolve(open, { kind: 'circuitClosed', deployment: 'sim-b', at: T0 + 20_000 }), config, T0 + 20_000)?.data.to).toBe(1);
    expect(decide(open, config, T0 + 30_000)?.data.to).toBe(1);
  });
});

describe('override', () => {
  it('sets exactly the forced level, including maintenance (4), and holds it whatever the signals', () => {
    let s = given(attempts(T0, 0, 20), { kind: 'override', override: 4 });
    let e: SluiceEvent<'degrade.changed'> | undefined;
    [s, e] = step(s, T0);
    expect(e?.data).toMatchObject({ from: 0, to: 4, manual: true });
    expect(e?.reason).toBe('operator override: level 4');
    [s, e] = step(evolve(s, attempts(T0 + 1, 20, 0)), T0 + 60_000);
    expect(e).toBeUndefined();
    s = evolve(s, { kind: 'override', override: 0 });
    [, e] = step(s, T0 + 60_001);
    expect(e?.data).toMatchObject({ from: 4, to: 0, manual: true });
  });

  it('forces a level below what the signals call for', () => {
    expect(decide(given(attempts(T0, 0, 20), { kind: 'override', override: 1 }), config, T0)?.data).toMatchObject({ to: 1, manual: true });
  });

  it('when lifted, hands back to the signals at once rather than one step per hold', () => {
    let s = given({ kind: 'override', override: 4 });
    [s] = step(s, T0);
    s = evolve(s, { kind: 'override', override: undefined });
    const [lifted, e] = step(s, T0 + 1);
    s = lifted;
    expect(e?.data).toMatchObject({ from: 4, to: 0, manual: false });
    expect(e?.reason).toMatch(/^operator override lifted; /);
    expect(s.manual).toBe(false);
  });

  it('records the hand-back even when the level stays, so later lowering follows the normal rules', () => {
    let s = given(attempts(T0, 0, 20), { kind: 'override', override: 3 });
    [s] = step(s, T0);
    s = evolve(s, { kind: 'override', override: undefined });
    const [after, e] = step(s, T0 + 1);
    expect(e?.data).toMatchObject({ from: 3, to: 3, manual: false });
    expect(after.since).toBe(T0);
  });

  it('given a restored override, then nothing changes at start', () => {
    const s = given({ kind: 'restored', state: { level: 4, override: 4, since: T0 - 5000, reason: 'operator override' } });
    expect(decide(s, config, T0)).toBeUndefined();
  });

  it('given a restored automatic level, then it is kept and lowered by the normal rules', () => {
    const s = given({ kind: 'restored', state: { level: 2, since: T0, reason: 'failure ratio' } });
    expect(s).toMatchObject({ level: 2, since: T0, manual: false });
    expect(decide(s, config, T0 + 5000)).toBeUndefined();
    expect(decide(s, config, T0 + 10_000)?.data).toMatchObject({ from: 2, to: 1 });
  });
});

describe('helpers', () => {
  it('levelOf picks the highest level whose entry ratio is reached', () => {
    expect([0, 0.19, 0.2, 0.49, 0.5, 0.89, 0.9, 1].map((r) => levelOf(r, [0.2, 0.5, 0.9]))).toEqual([0, 0, 1, 1, 2, 2, 3, 3]);
  });

  it('windowStats counts only samples inside the window and zeroes the ratio below minSamples', () => {
    const samples = [
      { at: 0, ok: false, latencyMs: 1 },
      { at: 10, ok: false, latencyMs: 2 },
      { at: 20, ok: true, latencyMs: 3 },
    ];
    expect(windowStats(samples, 5, 30, 2)).toMatchObject({ samples: 2, failures: 1, rawRatio: 0.5, ratio: 0.5 });
    expect(windowStats(samples, 5, 30, 3)).toMatchObject({ samples: 2, rawRatio: 0.5, ratio: 0 });
  });

  it('p95 is the nearest-rank percentile', () => {
    expect(p95([])).toBe(0);
    expect(p95(Array.from({ length: 100 }, (_, i) => 100 - i))).toBe(95);
  });

  it('degradeRecord keeps the override given and omits it when there is none', () => {
    const s = { ...initialState(T0), level: 2 };
    expect(degradeRecord(s, 'why', 4)).toEqual({ level: 2, override: 4, since: T0, reason: 'why' });
    expect(degradeRecord(s, 'why', undefined)).toEqual({ level: 2, since: T0, reason: 'why' });
  });
});
