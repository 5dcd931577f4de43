import {
  bodyFor,
  isWholeAnswer,
  makeEvent,
  replayChunks,
  ServiceName,
  settledContext,
  STATIC_FALLBACK,
  type ChatReply,
  type ChatResult,
  type SluiceEvent,
} from '@sluice/contracts';
import type { CacheEntry } from './entry.js';

export interface LookupDecision {
  event: SluiceEvent<'cache.hit'> | SluiceEvent<'cache.missed'>;
  /** Sent to the client's inbox after the event is in the stream (only on a hit). */
  replies: ChatReply[];
}

/**
 * What the cache does with an admitted request once it knows what the bucket held under the
 * request's key (`ctx.request.cacheKey`, computed at ingress; none means the request asked to
 * bypass the cache and nothing was read). A hit answers with the stored body whole, tool calls,
 * refusals, logprobs and usage details included; a streaming client gets it as the chunks (or
 * Responses events) an upstream would have sent, then the result.
 *
 * @example
 * decideLookup(admitted, entry, Date.now()).event.type // 'cache.hit' | 'cache.missed'
 */
export function decideLookup(admitted: SluiceEvent<'chat.admitted'>, entry: CacheEntry | undefined, now: number): LookupDecision {
  const { ctx, estimatedTokens } = admitted.data;
  const key = ctx.request.cacheKey;
  const fields = { requestId: admitted.requestId, tenant: admitted.tenant, service: ServiceName.Cache, at: now };
  if (key === undefined) {
    return { event: makeEvent('cache.missed', { ...fields, reason: 'cache bypassed on request' }, { ctx, estimatedTokens }), replies: [] };
  }
  if (!entry) {
    return { event: makeEvent('cache.missed', { ...fields, reason: 'no cached answer for this request' }, { ctx, key, estimatedTokens }), replies: [] };
  }
  const { answer } = entry;
  const ageSeconds = Math.max(0, Math.round((now - entry.storedAt) / 1000));
  const event = makeEvent(
    'cache.hit',
    { ...fields, reason: `exact cache hit: answer of request ${entry.requestId}, stored ${ageSeconds}s ago` },
    { ctx: settledContext(ctx), key, answer, storedAt: entry.storedAt },
  );
  const created = Math.floor(now / 1000);
  const { requestId } = admitted;
  const { endpoint } = ctx.request;
  const body = bodyFor(endpoint, answer.body, requestId, created);
  const rateLimit = ctx.rateLimit ? { rateLimit: ctx.rateLimit } : {};
  const result: ChatResult = { requestId, model: answer.model, body, usage: answer.usage, cached: true, created, ...rateLimit };
  if (!ctx.request.stream) return { event, replies: [result] };
  const chunks: ChatReply[] = replayChunks(endpoint, body, requestId).map((chunk, i) => ({
    requestId,
    model: answer.model,
    chunk,
    cached: true,
    ...(i === 0 ? rateLimit : {}),
  }));
  return { event, replies: [...chunks, result] };
}

export interface StoreDecision {
  key: string;
  entry: CacheEntry;
  event: SluiceEvent<'cache.stored'>;
}

/**
 * Whether a completed answer goes into the cache, under the key the router passed on (it passes
 * none for an answer made under a degrade level: a cheaper model or a capped length is not the
 * answer to the request the client made). Only whole answers are kept (`isWholeAnswer`): a cut
 * one (`length`, `content_filter`, ...) or a static fallback would be served again long after the
 * reason for it is gone. `ttlSeconds` is the bucket's TTL, reported on the event.
 */
export function decideStore(completed: SluiceEvent<'chat.completed'>, ttlSeconds: number, now: number): StoreDecision | undefined {
  const { cacheKey, answer, deployment, ctx } = completed.data;
  if (!cacheKey || ctx.request.cache === 'skip') return undefined;
  // a key outside the tenant's prefix would let one tenant's answer reach another
  if (!cacheKey.startsWith(`${completed.tenant}.`)) return undefined;
  if (deployment === STATIC_FALLBACK || !isWholeAnswer(ctx.request.endpoint, answer.body)) return undefined;
  return {
    key: cacheKey,
    entry: { answer, storedAt: now, requestId: completed.requestId },
    event: makeEvent(
      'cache.stored',
      {
        requestId: completed.requestId,
        tenant: completed.tenant,
        service: ServiceName.Cache,
        at: now,
        reason: `answer of ${answer.model} cached for ${ttlSeconds}s`,
      },
      { key: cacheKey, model: answer.model, ttlSeconds },
    ),
  };
}
