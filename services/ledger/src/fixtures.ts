import { makeEvent, type AnyEvent, type EmbeddingUse, type RequestContext } from '@sluice/contracts';
import { admitted, answer, chatRequest, completed, missed, requestContext, requested as requestedBy, routed } from '@sluice/contracts/testing';

// Events of whole requests, for the ledger's tests.

export const T0 = Date.parse('2025-06-01T12:00:00Z');

/** A request that came over HTTP at `receivedAt`, from user u1 for feature chat unless `over` says. */
function ctx(receivedAt: number, over: Partial<RequestContext['request']> = {}): RequestContext {
  const request = chatRequest({ model: 'auto', user: 'u1', feature: 'chat', ...over });
  return requestContext(request, { frontDoor: 'http', receivedAt });
}

interface Req {
  id: string;
  tenant: string;
  at: number;
  user?: string;
  feature?: string;
}

const f = (r: Req, service: AnyEvent['service'], at: number, reason = 'test') => ({ requestId: r.id, tenant: r.tenant, service, at, reason });
const ctxOf = (r: Req) => ctx(r.at, { user: r.user ?? 'u1', feature: r.feature ?? 'chat' });

export function requested(r: Req): AnyEvent {
  return requestedBy(r.id, r.tenant, { ctx: ctxOf(r) }, { at: r.at });
}

/** The embedding model of the ledger's tests, priced in PRICES. */
const EMBEDDING_MODEL = 'text-embedding-3-small';

/** What the semantic cache's lookup paid for: an embedding of `tokens` tokens. */
export function embeddingUse(tokens: number): EmbeddingUse {
  return { model: EMBEDDING_MODEL, deployment: 'sim-embed', usage: { prompt_tokens: tokens, total_tokens: tokens }, latencyMs: 3 };
}

/** requested → admitted → missed → routed → attempted → completed; `embedding`: the miss was a semantic lookup that paid for one. */
export function completedRequest(r: Req, model: string, prompt: number, completion: number, latencyMs: number, embedding?: EmbeddingUse): AnyEvent[] {
  const c = ctxOf(r);
  const end = r.at + latencyMs;
  return [
    requested(r),
    admitted(r.id, r.tenant, { ctx: c, estimatedTokens: prompt }, { at: r.at + 1 }),
    missed(
      r.id,
      r.tenant,
      { ctx: c, estimatedTokens: prompt, ...(embedding ? { embedding, semantic: { similarity: 0.5, threshold: 0.9 } } : {}) },
      { at: r.at + 2 },
    ),
    routed(r.id, r.tenant, { ctx: c, tier: 'small', candidates: [{ model, deployment: 'sim' }] }, { at: r.at + 3 }),
    makeEvent('invoke.attempted', { ...f(r, 'invoker', end - 1), suffix: 1 }, { attempt: 1, model, deployment: 'sim', ok: true, latencyMs: latencyMs - 5 }),
    completed(
      r.id,
      r.tenant,
      { ctx: c, answer: answer(model, prompt, completion), deployment: 'sim', upstreamLatencyMs: latencyMs - 5 },
      { at: end, reason: 'answered by sim' },
    ),
  ] as AnyEvent[];
}

export function cachedRequest(r: Req, model: string, prompt: number, completion: number, latencyMs: number): AnyEvent[] {
  const c = ctxOf(r);
  return [
    requested(r),
    admitted(r.id, r.tenant, { ctx: c, estimatedTokens: prompt }, { at: r.at + 1 }),
    makeEvent('cache.hit', f(r, 'cache', r.at + latencyMs, 'exact hit'), {
      ctx: c,
      key: 'k',
      answer: answer(model, prompt, completion),
      storedAt: r.at - 1000,
    }),
  ] as AnyEvent[];
}

/** requested → admitted → a semantic hit on `matched`'s answer, its embedding of `embeddingTokens` billed. */
export function semanticHitRequest(
  r: Req,
  model: string,
  prompt: number,
  completion: number,
  latencyMs: number,
  opts: { matched: string; similarity: number; embeddingTokens: number },
): AnyEvent[] {
  const c = ctxOf(r);
  return [
    requested(r),
    admitted(r.id, r.tenant, { ctx: c, estimatedTokens: prompt }, { at: r.at + 1 }),
    makeEvent('cache.hit', f(r, 'cache', r.at + latencyMs, `semantic hit at ${opts.similarity}`), {
      ctx: c,
      key: 'k-matched',
      answer: answer(model, prompt, completion),
      storedAt: r.at - 1000,
      kind: 'semantic',
      similarity: opts.similarity,
      matchedRequestId: opts.matched,
      embedding: embeddingUse(opts.embeddingTokens),
    }),
  ] as AnyEvent[];
}

/** requested → admitted → answered with `leader`'s answer while it was in flight. */
export function coalescedRequest(r: Req, model: string, prompt: number, completion: number, latencyMs: number, leader: string): AnyEvent[] {
  const c = ctxOf(r);
  return [
    requested(r),
    admitted(r.id, r.tenant, { ctx: c, estimatedTokens: prompt }, { at: r.at + 1 }),
    makeEvent('cache.coalesced', f(r, 'cache', r.at + latencyMs, `answered with ${leader}'s answer`), {
      ctx: c,
      key: 'k',
      answer: answer(model, prompt, completion),
      leaderRequestId: leader,
      waitedMs: latencyMs - 1,
    }),
  ] as AnyEvent[];
}

export function throttledRequest(r: Req, latencyMs: number): AnyEvent[] {
  return [
    requested(r),
    makeEvent('chat.throttled', f(r, 'limiter', r.at + latencyMs, 'tenant requests/min'), {
      layer: 'tenant',
      limit: 'requests',
      retryAfterMs: 1000,
      receivedAt: r.at,
    }),
  ] as AnyEvent[];
}

export function failedRequest(r: Req, latencyMs: number): AnyEvent[] {
  return [
    requested(r),
    admitted(r.id, r.tenant, { ctx: ctx(r.at), estimatedTokens: 10 }, { at: r.at + 1 }),
    makeEvent(
      'invoke.failed',
      { ...f(r, 'invoker', r.at + 5), suffix: 1 },
      { attempt: 1, model: 'gpt-4o-mini', deployment: 'sim', status: 500, error: 'boom', retryable: true, latencyMs: 4 },
    ),
    makeEvent('chat.failed', f(r, 'invoker', r.at + latencyMs, 'every deployment failed'), {
      code: 'upstream_failed',
      status: 502,
      message: 'Every upstream deployment failed.',
      attempts: 3,
      receivedAt: r.at,
    }),
  ] as AnyEvent[];
}

export function shedRequest(r: Req, latencyMs: number): AnyEvent[] {
  return [
    requested(r),
    makeEvent('chat.shed', f(r, 'router', r.at + latencyMs, 'degrade level 2'), {
      code: 'service_busy',
      retryAfterMs: 5000,
      degradeLevel: 2,
      receivedAt: r.at,
    }),
  ] as AnyEvent[];
}

/** An ingress rejection: no chat.requested before it. */
export function rejectedAtIngress(r: Req): AnyEvent[] {
  return [
    makeEvent('chat.rejected', f(r, 'ingress', r.at + 1, 'bad key'), {
      code: 'invalid_api_key',
      status: 401,
      message: 'The API key is not valid for this tenant.',
      stage: 'ingress',
      model: 'gpt-4o',
      receivedAt: r.at,
    }),
  ] as AnyEvent[];
}

export function circuitOpened(at: number): AnyEvent {
  return makeEvent(
    'circuit.opened',
    { requestId: '', tenant: '_system', service: 'invoker', at, reason: '5 failures', suffix: at },
    { deployment: 'sim', failures: 5, openForMs: 30_000 },
  );
}

const PRICES = {
  'gpt-4o-mini': { inputPerMTok: 0.15, outputPerMTok: 0.6 },
  'gpt-4o': { inputPerMTok: 2.5, outputPerMTok: 10 },
  [EMBEDDING_MODEL]: { inputPerMTok: 0.02, outputPerMTok: 0 },
} as const;

export const priceOf = (model: string) => (PRICES as Record<string, { inputPerMTok: number; outputPerMTok: number }>)[model];
