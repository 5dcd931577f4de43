import { describe, expect, it } from 'vitest';
import { SLO_OBJECTIVE, sloFigures, type SloCounts } from './slo.js';

const counts = (over: Partial<SloCounts>): SloCounts => ({
  requests: 0,
  completed: 0,
  degraded: 0,
  cached: 0,
  failed: 0,
  throttled: 0,
  shed: 0,
  rejected: 0,
  p50: null,
  p95: null,
  p99: null,
  ...over,
});

describe('sloFigures', () => {
  it('derives rates from outcome counts', () => {
    const s = sloFigures(counts({ requests: 10, completed: 6, cached: 2, failed: 2, throttled: 0, shed: 0, p50: 12.345, p95: 40, p99: 50 }));
    expect(s).toMatchObject({
      requests: 10,
      answered: 8,
      errorRate: 0.25,
      availability: 0.75,
      cacheHitRate: 0.25,
      throttleRate: 0,
      shedRate: 0,
      latencyMs: { p50: 12.35, p95: 40, p99: 50 },
    });
  });

  it('gives null, not 0 or 1, where there is nothing to divide by', () => {
    const s = sloFigures(counts({ requests: 3, throttled: 3 }));
    expect(s).toMatchObject({ answered: 0, errorRate: null, degradedRate: null, availability: null, cacheHitRate: null, throttleRate: 1 });
    expect(s.errorBudget).toEqual({ objective: SLO_OBJECTIVE, burnRate: null });
    expect(sloFigures(counts({})).throttleRate).toBeNull();
  });

  it('counts static answers (degrade level 3) as degraded: neither answered nor available', () => {
    const s = sloFigures(counts({ requests: 10, completed: 6, degraded: 2, cached: 0, failed: 2 }));
    expect(s).toMatchObject({ answered: 6, errorRate: 0.2, degradedRate: 0.2, availability: 0.6, cacheHitRate: 0 });
    expect(s.outcomes).toMatchObject({ completed: 6, degraded: 2, failed: 2 });
  });

  it('gives the error-budget burn rate against the objective: 1 spends the budget exactly', () => {
    expect(sloFigures(counts({ requests: 1000, completed: 999, failed: 1 })).errorBudget).toEqual({ objective: 0.999, burnRate: 1 });
    expect(sloFigures(counts({ requests: 1000, completed: 990, degraded: 10 })).errorBudget.burnRate).toBe(10);
    expect(sloFigures(counts({ requests: 5, completed: 5 })).errorBudget.burnRate).toBe(0);
  });
});
