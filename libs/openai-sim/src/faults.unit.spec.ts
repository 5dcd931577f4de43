import { describe, expect, it } from 'vitest';
import { applyFaultPatch, decideFault, faultsFromOptions, seededRandom } from './faults.js';
import type { Faults } from './types.js';

const base: Faults = faultsFromOptions({});

describe('faultsFromOptions', () => {
  it('defaults to no faults and no limits', () => {
    expect(base).toEqual({
      latencyMs: 0,
      tokenLatencyMs: 0,
      errorRate: 0,
      timeoutRate: 0,
      requestsPerMinute: null,
      tokensPerMinute: null,
      burstSeconds: 60,
      batchDelayMs: 0,
      batchWindowMs: 86_400_000,
    });
  });

  it('takes the options and ignores unrelated ones', () => {
    expect(faultsFromOptions({ port: 1, errorRate: 0.5, requestsPerMinute: 10 })).toMatchObject({ errorRate: 0.5, requestsPerMinute: 10 });
  });

  it('throws on invalid options', () => {
    expect(() => faultsFromOptions({ errorRate: 2 })).toThrow(RangeError);
  });
});

describe('applyFaultPatch', () => {
  it('keeps absent keys, sets given ones, and null clears a limit', () => {
    const limited = applyFaultPatch(base, { requestsPerMinute: 5, tokensPerMinute: 100 }) as Faults;
    const next = applyFaultPatch(limited, { errorRate: 0.25, requestsPerMinute: null }) as Faults;
    expect(next).toEqual({ ...base, errorRate: 0.25, requestsPerMinute: null, tokensPerMinute: 100 });
  });

  it('takes a burst shorter than the minute', () => {
    expect(applyFaultPatch(base, { burstSeconds: 2.5 })).toMatchObject({ burstSeconds: 2.5 });
  });

  it.each([
    [{ errorRate: 1.5 }],
    [{ timeoutRate: -0.1 }],
    [{ latencyMs: -1 }],
    [{ latencyMs: 'slow' }],
    [{ requestsPerMinute: 0 }],
    [{ tokensPerMinute: Infinity }],
    [{ burstSeconds: 0 }],
    [{ burstSeconds: 61 }],
    [{ batchDelayMs: -1 }],
    [{ batchWindowMs: 0 }],
    [{ burstSeconds: null }],
    [{ errorRates: 0.1 }],
    [[]],
    [null],
  ])('rejects %j', (patch) => {
    expect(typeof applyFaultPatch(base, patch)).toBe('string');
  });
});

describe('decideFault', () => {
  it('splits the unit interval into error, timeout, none', () => {
    const f = { errorRate: 0.2, timeoutRate: 0.3 };
    expect(decideFault(0, f)).toBe('error');
    expect(decideFault(0.19, f)).toBe('error');
    expect(decideFault(0.2, f)).toBe('timeout');
    expect(decideFault(0.49, f)).toBe('timeout');
    expect(decideFault(0.5, f)).toBe('none');
    expect(decideFault(0.999, { errorRate: 1, timeoutRate: 0 })).toBe('error');
    expect(decideFault(0, { errorRate: 0, timeoutRate: 0 })).toBe('none');
  });
});

describe('seededRandom', () => {
  it('is reproducible and roughly uniform', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const xs = Array.from({ length: 10_000 }, () => a());
    expect(xs.slice(0, 5)).toEqual(Array.from({ length: 5 }, () => b()));
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    const below = xs.filter((x) => x < 0.3).length / xs.length;
    expect(below).toBeGreaterThan(0.27);
    expect(below).toBeLessThan(0.33);
  });
});
