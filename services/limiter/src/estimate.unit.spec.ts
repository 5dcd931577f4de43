import { describe, expect, it } from 'vitest';
import { chatRequest } from '@sluice/contracts/testing';
import { DEFAULT_COMPLETION_TOKENS, estimateTokens, rateLimitState } from './estimate.js';

describe('estimateTokens', () => {
  it('is the prompt plus the output cap', () => {
    expect(estimateTokens(chatRequest({ promptTokens: 40, maxOutputTokens: 100 }))).toBe(140);
  });

  it('allows the default completion when the client set no cap', () => {
    expect(estimateTokens(chatRequest({ promptTokens: 40 }))).toBe(40 + DEFAULT_COMPLETION_TOKENS);
  });

  it('counts every choice the upstream will write (n)', () => {
    expect(estimateTokens(chatRequest({ promptTokens: 40, maxOutputTokens: 100, choices: 3 }))).toBe(340);
    expect(estimateTokens(chatRequest({ promptTokens: 0, choices: 2 }))).toBe(2 * DEFAULT_COMPLETION_TOKENS);
  });

  it('counts an explicit cap of zero as zero (embeddings write no output)', () => {
    expect(estimateTokens(chatRequest({ endpoint: 'embeddings', promptTokens: 12, maxOutputTokens: 0 }))).toBe(12);
  });
});

describe('rateLimitState', () => {
  const limits = {
    user: { requestsPerMinute: 10, tokensPerMinute: 1_000 },
    tenant: { requestsPerMinute: 600, tokensPerMinute: 900 },
    global: { requestsPerMinute: 6_000, tokensPerMinute: 1_000_000 },
  };

  it('takes per kind the layer with the fewest left, and when it is full again', () => {
    const state = rateLimitState(
      { user: { requests: 4, tokens: 800, at: 0 }, tenant: { requests: 500, tokens: 300.5, at: 0 }, global: { requests: 5_000, tokens: 999_000, at: 0 } },
      limits,
    );
    // user requests: 6 short of 10 at 10/min -> 36 s; tenant tokens: 599.5 short of 900 at 900/min -> 39,967 ms
    expect(state).toEqual({ requests: { limit: 10, remaining: 4, resetMs: 36_000 }, tokens: { limit: 900, remaining: 300, resetMs: 39_967 } });
  });

  it('reports no remaining below zero (a bucket in debt)', () => {
    const state = rateLimitState({ tenant: { requests: 1, tokens: -50, at: 0 } }, { tenant: limits.tenant, global: limits.global });
    expect(state?.tokens.remaining).toBe(0);
    expect(state?.tokens.resetMs).toBe(Math.ceil((950 * 60_000) / 900));
  });

  it('reports no more remaining than the limit (a view with a leased block, above capacity), full now', () => {
    const state = rateLimitState({ tenant: { requests: 606, tokens: 909, at: 0 } }, { tenant: limits.tenant, global: limits.global });
    expect(state).toEqual({ requests: { limit: 600, remaining: 600, resetMs: 0 }, tokens: { limit: 900, remaining: 900, resetMs: 0 } });
  });

  it('is undefined when no bucket was decided on', () => {
    expect(rateLimitState({}, limits)).toBeUndefined();
  });
});
