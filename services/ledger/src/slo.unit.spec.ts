import { describe, expect, it } from 'vitest';
import { sloFigures, type SloCounts } from './slo.js';

const counts = (over: Partial<SloCounts>): SloCounts => ({
  requests: 0,
  completed: 0,
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
    expect(s).toMatchObject({ answered: 0, errorRate: null, availability: null, cacheHitRate: null, throttleRate: 1 });
    expect(sloFigures(counts({})).throttleRate).toBeNull();
  });
});
