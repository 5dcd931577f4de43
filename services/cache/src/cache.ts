import {
  billedPrice,
  bodyFor,
  isWholeAnswer,
  makeEvent,
  replayChunks,
  ServiceName,
  settledContext,
  STATIC_FALLBACK,
  type Answer,
  type CacheKind,
  type CachePolicy,
  type ChatReply,
  type ChatResult,
  type EmbeddingUse,
  type EventDataOf,
  type SemanticLookup,
  type SluiceConfig,
  type SluiceEvent,
} from '@sluice/contracts';
import type { CacheEntry } from './entry.js';

export interface LookupDecision {
  event: SluiceEvent<'cache.hit'> | SluiceEvent<'cache.missed'>;
  /** Sent to the client's inbox after the event is in the stream (only on a hit). */
  replies: ChatReply[];
}

type Admitted = SluiceEvent<'chat.admitted'>;

const fieldsOf = (admitted: Admitted, now: number, reason: string) => ({
  requestId: admitted.requestId,
  tenant: admitted.tenant,
  service: ServiceName.Cache,
  at: now,
  reason,
});

/**
 * The price of the answering model when a cached answer is served, from the live config's
 * `models`: what the ledger computes its saving at, recorded on the event so a rebuild saves the
 * same (docs/ledger.md). Without `models`, none is recorded.
 */
const savedAt = (answer: Answer, models: SluiceConfig['models'] | undefined) => (models ? { price: billedPrice(models, answer.model, false) } : {});

/**
 * What the cache does with an admitted request once it knows what the bucket held under the
 * request's key (`ctx.request.cacheKey`, computed at ingress; none means the request asked to
 * bypass the cache and nothing was read). A hit answers with the stored body whole, tool calls,
 * refusals, logprobs and usage details included; a streaming client gets it as the chunks (or
 * Responses events) an upstream would have sent, then the result. An entry past its own
 * `expiresAt` (a TTL shorter than the bucket's) is a miss.
 *
 * @example
 * decideLookup(admitted, entry, Date.now(), config.models).event.type // 'cache.hit' | 'cache.missed'
 */
export function decideLookup(admitted: Admitted, entry: CacheEntry | undefined, now: number, models?: SluiceConfig['models']): LookupDecision {
  const { ctx, estimatedTokens } = admitted.data;
  const key = ctx.request.cacheKey;
  if (key === undefined) {
    return { event: makeEvent('cache.missed', fieldsOf(admitted, now, 'cache bypassed on request'), { ctx, estimatedTokens }), replies: [] };
  }
  if (!entry || (entry.expiresAt !== undefined && entry.expiresAt <= now)) {
    const reason = entry
      ? `the cached answer of request ${entry.requestId} expired ${Math.round((now - entry.expiresAt!) / 1000)}s ago`
      : 'no cached answer for this request';
    return { event: makeEvent('cache.missed', fieldsOf(admitted, now, reason), { ctx, key, estimatedTokens }), replies: [] };
  }
  const { answer } = entry;
  const ageSeconds = Math.max(0, Math.round((now - entry.storedAt) / 1000));
  const event = makeEvent('cache.hit', fieldsOf(admitted, now, `exact cache hit: answer of request ${entry.requestId}, stored ${ageSeconds}s ago`), {
    ctx: settledContext(ctx),
    key,
    answer,
    storedAt: entry.storedAt,
    kind: 'exact',
    ...savedAt(answer, models),
  });
  return { event, replies: repliesOf(admitted, answer, 'hit', now) };
}

/**
 * A semantic hit: the answer stored under another request's key (`matched`), whose question the
 * index found at `similarity` and the guard let through (docs/caching.md). `models`: the live
 * config's, for the price recorded with it.
 */
export function decideSemanticHit(
  admitted: Admitted,
  matched: { key: string; entry: CacheEntry; similarity: number; threshold: number },
  embedding: EmbeddingUse | undefined,
  now: number,
  models?: SluiceConfig['models'],
): LookupDecision {
  const { entry, similarity } = matched;
  const ageSeconds = Math.max(0, Math.round((now - entry.storedAt) / 1000));
  const reason = `semantic cache hit: similarity ${similarity.toFixed(3)} (threshold ${matched.threshold}) to request ${entry.requestId}, stored ${ageSeconds}s ago`;
  const event = makeEvent('cache.hit', fieldsOf(admitted, now, reason), {
    ctx: settledContext(admitted.data.ctx),
    key: matched.key,
    answer: entry.answer,
    storedAt: entry.storedAt,
    kind: 'semantic',
    similarity: round(similarity),
    matchedRequestId: entry.requestId,
    ...(embedding ? { embedding } : {}),
    ...savedAt(entry.answer, models),
  });
  return { event, replies: repliesOf(admitted, entry.answer, 'semantic', now) };
}

/** What a miss found on its way, for the timeline (each part optional). */
export interface MissFindings {
  reason: string;
  semantic?: SemanticLookup;
  embedding?: EmbeddingUse;
  /** The revision of this request's leader record in `sluice_inflight`, when it leads its key. */
  leads?: number;
  takeover?: string;
}

/** The request goes on to the router: no exact entry, no coalescing partner, no semantic match. */
export function decideMiss(admitted: Admitted, findings: MissFindings, now: number): SluiceEvent<'cache.missed'> {
  const { ctx, estimatedTokens } = admitted.data;
  const key = ctx.request.cacheKey;
  const data: EventDataOf<'cache.missed'> = {
    ctx: findings.leads !== undefined ? { ...ctx, coalesce: { revision: findings.leads } } : ctx,
    ...(key !== undefined ? { key } : {}),
    estimatedTokens,
    ...(findings.semantic
      ? { semantic: { ...findings.semantic, ...(findings.semantic.similarity !== undefined ? { similarity: round(findings.semantic.similarity) } : {}) } }
      : {}),
    ...(findings.embedding ? { embedding: findings.embedding } : {}),
    ...(findings.leads !== undefined ? { leads: true } : {}),
    ...(findings.takeover ? { takeover: findings.takeover } : {}),
  };
  return makeEvent('cache.missed', fieldsOf(admitted, now, findings.reason), data);
}

/** A follower of an identical request in flight, answered with its leader's answer (`models`: the live config's, for its price). */
export function decideCoalesced(
  admitted: Admitted,
  joined: { leaderRequestId: string; answer: Answer; waitedMs: number },
  now: number,
  models?: SluiceConfig['models'],
): { event: SluiceEvent<'cache.coalesced'>; replies: ChatReply[] } {
  const key = admitted.data.ctx.request.cacheKey!;
  const reason = `coalesced: answered with request ${joined.leaderRequestId}'s answer after waiting ${Math.round(joined.waitedMs)} ms`;
  const event = makeEvent('cache.coalesced', fieldsOf(admitted, now, reason), {
    ctx: settledContext(admitted.data.ctx),
    key,
    answer: joined.answer,
    leaderRequestId: joined.leaderRequestId,
    waitedMs: Math.round(joined.waitedMs),
    ...savedAt(joined.answer, models),
  });
  return { event, replies: repliesOf(admitted, joined.answer, 'coalesced', now) };
}

/** The client's replies for an answer the cache holds: the body whole, or its replayed chunks then the result. */
function repliesOf(admitted: Admitted, answer: Answer, cache: CacheKind, now: number): ChatReply[] {
  const { ctx } = admitted.data;
  const created = Math.floor(now / 1000);
  const { requestId } = admitted;
  const { endpoint } = ctx.request;
  const body = bodyFor(endpoint, answer.body, requestId, created);
  const rateLimit = ctx.rateLimit ? { rateLimit: ctx.rateLimit } : {};
  const result: ChatResult = { requestId, model: answer.model, body, usage: answer.usage, cached: true, cache, created, ...rateLimit };
  if (!ctx.request.stream) return [result];
  const chunks: ChatReply[] = replayChunks(endpoint, body, requestId).map((chunk, i) => ({
    requestId,
    model: answer.model,
    chunk,
    cached: true,
    cache,
    ...(i === 0 ? rateLimit : {}),
  }));
  return [...chunks, result];
}

export interface StoreDecision {
  key: string;
  entry: CacheEntry;
  event: SluiceEvent<'cache.stored'>;
}

/** Why a completed answer is not kept, or undefined when it may be (`policy` is the tenant's). */
export function unstorable(completed: SluiceEvent<'chat.completed'>, policy: CachePolicy): string | undefined {
  const { cacheKey, answer, deployment, ctx } = completed.data;
  if (ctx.request.cache === 'skip') return 'cache bypassed on request';
  // the router passes no key for an answer made under a degrade level: a cheaper model or a capped length is not the answer asked for
  if (!cacheKey) return 'a degraded answer is never stored under the original key';
  // a key outside the tenant's prefix would let one tenant's answer reach another
  if (!cacheKey.startsWith(`${completed.tenant}.`)) return 'the key is not the tenant’s';
  if (deployment === STATIC_FALLBACK) return 'a static answer is never stored';
  const body = answer.body as { choices?: Array<{ finish_reason?: unknown; message?: { tool_calls?: unknown } }> } | null;
  const choices = ctx.request.endpoint === 'chat.completions' && Array.isArray(body?.choices) ? body.choices : [];
  if (choices.length > 1 && policy.multipleChoices === 'skip') return 'answers of several choices are not stored (policy multipleChoices: skip)';
  if (choices.some((c) => c.finish_reason === 'tool_calls') && policy.toolCalls === 'skip') return 'tool-call answers are not stored (policy toolCalls: skip)';
  if (isWholeAnswer(ctx.request.endpoint, answer.body)) return undefined;
  const cutByLength =
    choices.length > 0 &&
    choices.some((c) => c.finish_reason === 'length') &&
    choices.every((c) => c.finish_reason === 'length' || c.finish_reason === 'stop' || c.finish_reason === 'tool_calls');
  if (cutByLength && policy.length === 'store') return undefined;
  return cutByLength ? 'an answer cut by length is not stored (policy length: skip)' : 'the answer is not whole (content filter, incomplete)';
}

/**
 * Whether a completed answer goes into the cache, under the key the router passed on, and for how
 * long: `ttlSeconds` is the shortest of the request's, the tenant's and the bucket's TTL. Kept:
 * whole answers (`isWholeAnswer`), and what the tenant's policy adds (answers cut by `length`) or
 * takes away (tool calls, several choices). Never kept: degraded and static answers, and answers
 * whose request skipped the cache.
 */
export function decideStore(completed: SluiceEvent<'chat.completed'>, policy: CachePolicy, ttlSeconds: number, now: number): StoreDecision | undefined {
  if (unstorable(completed, policy) !== undefined) return undefined;
  const { answer } = completed.data;
  const key = completed.data.cacheKey!;
  const expiresAt = now + ttlSeconds * 1000;
  return {
    key,
    entry: { answer, storedAt: now, requestId: completed.requestId, expiresAt },
    event: makeEvent(
      'cache.stored',
      {
        requestId: completed.requestId,
        tenant: completed.tenant,
        service: ServiceName.Cache,
        at: now,
        reason: `answer of ${answer.model} cached for ${ttlSeconds}s`,
      },
      { key, model: answer.model, ttlSeconds, expiresAt },
    ),
  };
}

const round = (x: number) => Math.round(x * 10_000) / 10_000;
