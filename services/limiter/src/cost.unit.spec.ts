import { describe, expect, it } from 'vitest';
import { estimateCostNanos } from './cost.js';
import { DEFAULT_COMPLETION_TOKENS } from './estimate.js';

const config = {
  models: {
    mini: { deployments: ['d'], fallback: [], price: { inputPerMTok: 0.15, outputPerMTok: 0.6 } },
    big: { deployments: ['d'], fallback: [], price: { inputPerMTok: 2.5, outputPerMTok: 10 } },
    free: { deployments: ['d'], fallback: [], price: { inputPerMTok: 0, outputPerMTok: 0 } },
  },
  tiers: [
    { name: 'cheap', model: 'mini', maxComplexity: 0.3 },
    { name: 'premium', model: 'big', maxComplexity: 1 },
  ],
};

describe('estimateCostNanos', () => {
  it('given a named model and an output cap, then prompt × input price + cap × output price, in nano-USD', () => {
    // 1,000 × $2.50/MTok = 2,500,000 nano-USD; 100 × $10/MTok = 1,000,000
    expect(estimateCostNanos(config, { model: 'big', promptTokens: 1_000, choices: 1, maxOutputTokens: 100 })).toBe(3_500_000);
  });

  it('given no output cap, then every choice is allowed the default completion', () => {
    const nanos = estimateCostNanos(config, { model: 'mini', promptTokens: 1_000, choices: 2 });
    expect(nanos).toBe(150_000 + 2 * DEFAULT_COMPLETION_TOKENS * 600);
  });

  it('given auto, then it is priced at the priciest tier: the router has not chosen yet', () => {
    expect(estimateCostNanos(config, { model: 'auto', promptTokens: 10, choices: 1, maxOutputTokens: 10 })).toBe(10 * 2_500 + 10 * 10_000);
  });

  it('given a downgrade, then it is priced at the cheapest tier, whatever it named', () => {
    expect(estimateCostNanos(config, { model: 'big', promptTokens: 10, choices: 1, maxOutputTokens: 10 }, true)).toBe(10 * 150 + 10 * 600);
  });

  it('given a model the config lacks, then undefined: the router refuses it and it costs nothing', () => {
    expect(estimateCostNanos(config, { model: 'gpt-unknown', promptTokens: 10, choices: 1 })).toBeUndefined();
  });

  it('given a fractional cost, then it rounds up (a reservation errs high), and a free model costs 0', () => {
    // 1 token × $0.15/MTok = 150 nano-USD; 1 output token at $0.6 = 600: exact; 7 × 0.15 = 1,050.0000000000002 → 1,051
    expect(estimateCostNanos(config, { model: 'mini', promptTokens: 1, choices: 1, maxOutputTokens: 1 })).toBe(750);
    expect(estimateCostNanos(config, { model: 'mini', promptTokens: 7, choices: 1, maxOutputTokens: 0 })).toBeGreaterThanOrEqual(1_050);
    expect(estimateCostNanos(config, { model: 'free', promptTokens: 1_000, choices: 1 })).toBe(0);
  });
});
