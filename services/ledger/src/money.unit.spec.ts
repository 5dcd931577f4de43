import { describe, expect, it } from 'vitest';
import { costUsd, formatUsd, nanosCeil, usdUnits } from './money.js';

describe('costUsd', () => {
  it('prices input and output tokens per million', () => {
    expect(costUsd(1000, 500, { inputPerMTok: 0.15, outputPerMTok: 0.6 })).toBe('0.00045');
    expect(costUsd(1_000_000, 1_000_000, { inputPerMTok: 2.5, outputPerMTok: 10 })).toBe('12.5');
  });

  it('is exact where floats are not', () => {
    // 3 × 0.1 is 0.30000000000000004 in floats
    expect(costUsd(3_000_000, 0, { inputPerMTok: 0.1, outputPerMTok: 0 })).toBe('0.3');
    expect(costUsd(7, 3, { inputPerMTok: 0.15, outputPerMTok: 0.6 })).toBe('0.00000285');
  });

  it('is 0 for a model without a price and for no tokens', () => {
    expect(costUsd(1000, 1000, undefined)).toBe('0');
    expect(costUsd(0, 0, { inputPerMTok: 5, outputPerMTok: 15 })).toBe('0');
  });

  it('refuses a price that is not an amount', () => {
    expect(() => costUsd(1, 1, { inputPerMTok: -1, outputPerMTok: 0 })).toThrow(RangeError);
    expect(() => costUsd(1, 1, { inputPerMTok: Number.NaN, outputPerMTok: 0 })).toThrow(RangeError);
  });
});

describe('nano-USD for budget counters', () => {
  it('rounds a cost up to whole nano-USD', () => {
    expect(nanosCeil('0.00045')).toBe(450_000n);
    expect(nanosCeil('0.0000000001')).toBe(1n);
    expect(nanosCeil('0.000000001')).toBe(1n);
    expect(nanosCeil('0.0000000010000001')).toBe(2n);
    expect(nanosCeil('0')).toBe(0n);
    expect(nanosCeil('12.5')).toBe(12_500_000_000n);
  });

  it('adds exact decimals through units and back', () => {
    expect(formatUsd(usdUnits('0.1') + usdUnits('0.2'))).toBe('0.3');
    expect(formatUsd(usdUnits('0.000450000000000000'))).toBe('0.00045');
    expect(formatUsd(0n)).toBe('0');
  });

  it('refuses what is not a plain decimal', () => {
    for (const bad of ['', '-1', '1e-9', 'abc', '0.1234567890123456789']) expect(() => usdUnits(bad)).toThrow(RangeError);
  });
});
