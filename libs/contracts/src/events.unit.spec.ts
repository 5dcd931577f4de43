import { describe, expect, it } from 'vitest';
import { billedPrice, eventProblem, STATIC_PRICE } from './events.js';
import { completed } from './testing.js';

const models = {
  'gpt-4o-mini': { price: { inputPerMTok: 0.15, outputPerMTok: 0.6 } },
  'gpt-4o': { price: { inputPerMTok: 2.5, outputPerMTok: 10, batchInputPerMTok: 1, batchOutputPerMTok: 4 } },
};

describe('billedPrice', () => {
  it("given a model's price, then the price as configured", () => {
    expect(billedPrice(models, 'gpt-4o-mini', false)).toEqual({ inputPerMTok: 0.15, outputPerMTok: 0.6, source: 'config' });
  });

  it('given a batch line, then the batch prices, or half the normal ones where none are set', () => {
    expect(billedPrice(models, 'gpt-4o-mini', true)).toEqual({ inputPerMTok: 0.075, outputPerMTok: 0.3, batch: true, source: 'config' });
    expect(billedPrice(models, 'gpt-4o', true)).toEqual({ inputPerMTok: 1, outputPerMTok: 4, batch: true, source: 'config' });
  });

  it('given a model without a price, then 0, marked unpriced (never a price inherited from Object.prototype)', () => {
    expect(billedPrice(models, 'static-fallback', false)).toEqual({ inputPerMTok: 0, outputPerMTok: 0, source: 'unpriced' });
    expect(billedPrice(models, 'constructor', true)).toEqual({ inputPerMTok: 0, outputPerMTok: 0, batch: true, source: 'unpriced' });
  });
});

describe('chat.completed price', () => {
  it('parses with and without a recorded price (events from before it was recorded)', () => {
    expect(eventProblem(completed('r1', 'acme'))).toBeUndefined();
    expect(eventProblem(completed('r1', 'acme', { price: billedPrice(models, 'gpt-4o', false) }))).toBeUndefined();
    expect(eventProblem(completed('r1', 'acme', { price: STATIC_PRICE }))).toBeUndefined();
  });

  it('refuses a negative price or an unknown source', () => {
    const negative = { inputPerMTok: -1, outputPerMTok: 0, source: 'config' as const };
    expect(eventProblem(completed('r1', 'acme', { price: negative }))).toMatch(/chat.completed data\/price\/inputPerMTok/);
    const unknown = { inputPerMTok: 1, outputPerMTok: 0, source: 'guess' } as unknown as typeof negative;
    expect(eventProblem(completed('r1', 'acme', { price: unknown }))).toMatch(/chat.completed data\/price\/source/);
  });
});
