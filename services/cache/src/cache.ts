import { makeEvent, ServiceName, STATIC_FALLBACK, type ChatChunk, type ChatResult, type ChatReply, type SluiceEvent } from '@sluice/contracts';
import type { CacheEntry } from './entry.js';

/**
 * Deployment name the router gives answers it made up at degrade level 3. They say "try again
 * later" and must never be served from the cache once the upstream is back.
 */

export interface LookupDecision {
  event: SluiceEvent<'cache.hit'> | SluiceEvent<'cache.missed'>;
  /** Sent to the client's inbox after the event is in the stream (only on a hit). */
  replies: ChatReply[];
}

/**
 * What the cache does with an admitted request once it knows its key and what the bucket held:
 * `key` undefined means the request asked to bypass the cache and nothing was read.
 *
 * @example
 * decideLookup(admitted, key, entry, Date.now()).event.type // 'cache.hit' | 'cache.missed'
 */
export function decideLookup(admitted: SluiceEvent<'chat.admitted'>, key: string | undefined, entry: CacheEntry | undefined, now: number): LookupDecision {
  const { ctx, estimatedTokens } = admitted.data;
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
    { ctx, key, answer, storedAt: entry.storedAt },
  );
  const result: ChatResult = {
    requestId: admitted.requestId,
    model: answer.model,
    message: answer.message,
    finishReason: answer.finishReason,
    usage: answer.usage,
    cached: true,
    created: Math.floor(now / 1000),
  };
  // a streaming client sees the same sequence as from the upstream: chunks, then the result
  const chunk: ChatChunk = { requestId: admitted.requestId, model: answer.model, chunk: { role: 'assistant', content: answer.message.content }, cached: true };
  return { event, replies: ctx.request.stream ? [chunk, result] : [result] };
}

export interface StoreDecision {
  key: string;
  entry: CacheEntry;
  event: SluiceEvent<'cache.stored'>;
}

/**
 * Whether a completed answer goes into the cache. Only whole answers are kept: a truncated one
 * (`length`, `content_filter`, ...) or a static fallback would be served again long after the
 * reason for it is gone. `ttlSeconds` is the bucket's TTL, reported on the event.
 */
export function decideStore(completed: SluiceEvent<'chat.completed'>, ttlSeconds: number, now: number): StoreDecision | undefined {
  const { cacheKey, answer, deployment, ctx } = completed.data;
  if (!cacheKey || ctx.request.cache === 'skip') return undefined;
  // a key outside the tenant's prefix would let one tenant's answer reach another
  if (!cacheKey.startsWith(`${completed.tenant}.`)) return undefined;
  if (answer.finishReason !== 'stop' || deployment === STATIC_FALLBACK) return undefined;
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
