import type { ChatRequest, RateLimitState } from '@sluice/contracts';
import { rateOf, layersOf, type Buckets, type Limits } from './limiter.js';

/** Completion allowance per choice when a request sets no output cap. */
export const DEFAULT_COMPLETION_TOKENS = 256;

/**
 * Tokens a request may use: its prompt as ingress counted it once (text, tool definitions,
 * images, audio: `ChatRequest.promptTokens`), plus `choices` × the output cap (or
 * DEFAULT_COMPLETION_TOKENS). Pure and cheap, so reconciliation recomputes it from the facts
 * chat.completed carries instead of recounting the prompt.
 *
 * @example
 * estimateTokens({ promptTokens: 20, choices: 2, maxOutputTokens: 100 }) // 220
 */
export function estimateTokens(request: Pick<ChatRequest, 'promptTokens' | 'choices' | 'maxOutputTokens'>): number {
  return request.promptTokens + request.choices * (request.maxOutputTokens ?? DEFAULT_COMPLETION_TOKENS);
}

/**
 * The tightest requests and tokens buckets after an admission, for OpenAI's x-ratelimit-*
 * headers: per kind the layer with the fewest left, its per-minute limit, and the milliseconds
 * until it is full again at its refill rate. Undefined when no bucket was decided on.
 */
export function rateLimitState(buckets: Buckets, limits: Limits): RateLimitState | undefined {
  let requests: RateLimitState['requests'] | undefined;
  let tokens: RateLimitState['tokens'] | undefined;
  for (const layer of layersOf(limits)) {
    const b = buckets[layer];
    if (!b) continue;
    const rate = rateOf(limits, layer);
    const r = bucketState(b.requests, rate.requestsPerMinute);
    const t = bucketState(b.tokens, rate.tokensPerMinute);
    if (!requests || r.remaining < requests.remaining) requests = r;
    if (!tokens || t.remaining < tokens.remaining) tokens = t;
  }
  return requests && tokens ? { requests, tokens } : undefined;
}

/**
 * One bucket at `level` of its `perMinute` capacity: what is left (between 0 and the limit) and the
 * ms until it is full again. A replica's view (the bucket as last known, plus the block it has
 * leased) can sit up to a lease above capacity, since the bucket refills while the block is out;
 * the header never says more is left than the limit.
 */
export function bucketState(level: number, perMinute: number): RateLimitState['requests'] {
  const remaining = Math.min(perMinute, Math.max(0, Math.floor(level)));
  return { limit: perMinute, remaining, resetMs: Math.max(0, Math.ceil(((perMinute - level) * 60_000) / perMinute)) };
}
