import { Type, type Static } from '@sinclair/typebox';
import { Priority, RequestKey } from './spend.js';

export { Priority };

/** A cache namespace (`x-sluice-cache-namespace`): letters, digits, `_`, `.`, `-`, at most 64. */
export const CACHE_NAMESPACE_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * The OpenAI API a request was made to, by its path: `POST /v1/chat/completions`,
 * `POST /v1/responses`, `POST /v1/embeddings`.
 */
export const Endpoint = Type.Union([Type.Literal('chat.completions'), Type.Literal('responses'), Type.Literal('embeddings')]);
export type Endpoint = Static<typeof Endpoint>;

/** How hard a request looks to the router, in [0, 1], and the signals behind the score. */
export const Complexity = Type.Object({
  score: Type.Number({ minimum: 0, maximum: 1 }),
  promptTokens: Type.Integer({ minimum: 0 }),
  turns: Type.Integer({ minimum: 0 }),
  code: Type.Boolean(),
  keywords: Type.Array(Type.String()),
});
export type Complexity = Static<typeof Complexity>;

/**
 * What the pipeline knows about a request: the client's choices Sluice acts on, and the facts
 * ingress computed once from the body. The body itself (opaque OpenAI JSON, as the client sent
 * it) travels only in `chat.requested`; later events carry this and a reference to that event.
 */
export const ChatRequest = Type.Object({
  endpoint: Endpoint,
  /** As requested; `auto` lets the router choose. */
  model: Type.String({ minLength: 1 }),
  user: Type.Optional(Type.String()),
  feature: Type.Optional(Type.String()),
  priority: Priority,
  stream: Type.Boolean(),
  /** `skip` bypasses the cache for lookup and store. */
  cache: Type.Union([Type.Literal('default'), Type.Literal('skip')]),
  /** Prompt tokens as the upstream counts them: text, tool definitions, images, audio (o200k_base). */
  promptTokens: Type.Integer({ minimum: 0 }),
  /** The client's output cap (`max_completion_tokens` ?? `max_tokens`, `max_output_tokens`); unset when it set none. */
  maxOutputTokens: Type.Optional(Type.Integer({ minimum: 0 })),
  /** Choices the upstream writes (`n`). */
  choices: Type.Integer({ minimum: 1 }),
  /** For the router, its one reader; events after `chat.routed` leave it out (`withoutRouting`). */
  complexity: Type.Optional(Complexity),
  /** `<tenant>.<sha256>` of every field that changes the answer (and the cache namespace); unset with `cache: 'skip'`. */
  cacheKey: Type.Optional(Type.String()),
  /**
   * How long this request's answer may be served from the cache, in seconds (`x-sluice-cache-ttl`):
   * at most the tenant's and the bucket's TTL, which the cache applies and reports on `cache.stored`.
   */
  cacheTtlSeconds: Type.Optional(Type.Integer({ minimum: 1 })),
  /**
   * A cache partition inside the tenant (`x-sluice-cache-namespace`): part of the exact key's hash and
   * of the semantic index's partition, so answers are shared only within one namespace.
   */
  cacheNamespace: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' })),
});
export type ChatRequest = Static<typeof ChatRequest>;

/** One rate-limit bucket as OpenAI's x-ratelimit-* headers describe it: per-minute limit, what is left, ms until full. */
export const BucketState = Type.Object({ limit: Type.Integer(), remaining: Type.Integer(), resetMs: Type.Integer({ minimum: 0 }) });

/** The request's facts plus what ingress learned about it; carried by every event on the request path. */
export const RequestContext = Type.Object({
  request: ChatRequest,
  /** Core NATS subject the terminal stage answers on (and streams chunks to). */
  replyTo: Type.Optional(Type.String()),
  frontDoor: Type.Union([Type.Literal('http'), Type.Literal('nats')]),
  /** Epoch ms when ingress accepted the request. */
  receivedAt: Type.Number(),
  /** Epoch ms after which nobody waits for the answer any more. */
  deadline: Type.Number(),
  /**
   * Stream sequence of the request's `chat.requested` in SLUICE_EVENTS, where its body is: set
   * by the limiter (the first consumer of that event), read by the invoker.
   */
  requestSeq: Type.Optional(Type.Integer({ minimum: 1 })),
  /** The tightest rate limits that applied, set by the limiter; ingress sends them as x-ratelimit-* headers. */
  rateLimit: Type.Optional(Type.Object({ requests: BucketState, tokens: BucketState })),
  /** The virtual key the request came with (ingress); absent for a tenant's config key. */
  key: Type.Optional(RequestKey),
  /**
   * Set by the limiter when a budget with `action: downgrade` is spent: the router sends the
   * request to the cheapest tier. Names the budget, for the timeline.
   */
  downgrade: Type.Optional(Type.Object({ budget: Type.String() })),
  /**
   * Set by the cache on `cache.missed` when this request leads the coalescing of its key: the
   * revision of its record in `sluice_inflight`. Carried to `chat.completed`, whose store hands the
   * answer to the requests that waited for it (docs/caching.md, Coalescing).
   */
  coalesce: Type.Optional(Type.Object({ revision: Type.Integer({ minimum: 0 }) })),
  /**
   * Set by the router on a request it held at degrade level 4 and released: when it was held
   * (epoch ms). Its deadline was moved to the release by as long as it had at the hold, and its
   * `replyTo` is then its result subject (`Subjects.result`).
   */
  held: Type.Optional(Type.Object({ at: Type.Number(), releasedAt: Type.Number() })),
  /**
   * An async request's webhook (`x-sluice-webhook`: the id of one of `alerts.webhooks` that takes
   * this tenant's): the terminal stage marks its stored answer with it and the ledger POSTs it there.
   */
  webhook: Type.Optional(Type.String()),
  /**
   * Set by ingress on a request sent with an `Idempotency-Key`: the stage that answers also stores
   * its final answer on the request's result subject (`Subjects.result`), so a retry with the key,
   * or `GET /v1/sluice/requests/{id}/result`, gets it after the client's connection dropped; and
   * a client leaving does not cancel it.
   */
  keepResult: Type.Optional(Type.Literal(true)),
  /** Set by the router when a canary matched: which canary and variant the request took (the ledger reports per variant). */
  variant: Type.Optional(Type.Object({ canary: Type.String(), name: Type.String() })),
  /**
   * Set by ingress's batch runner on a line of a batch (`POST /v1/batches`): the batch and the
   * line's `custom_id`. The ledger prices such a request at the model's batch price.
   */
  batch: Type.Optional(Type.Object({ id: Type.String(), customId: Type.String() })),
});
export type RequestContext = Static<typeof RequestContext>;
export type RateLimitState = NonNullable<RequestContext['rateLimit']>;

/** The context without what only the router reads (the complexity): what `chat.routed` carries on. */
export function withoutRouting(ctx: RequestContext): RequestContext {
  const { complexity: _complexity, ...request } = ctx.request;
  return { ...ctx, request };
}

/**
 * The context a terminal event keeps: what its readers (the cache's store, the limiter's
 * reconcile, the ledger) need. The reply inbox, the rate-limit state, where the body is and the
 * routing features were used up before it; leaving them out keeps each request's events small.
 */
export function settledContext(ctx: RequestContext): RequestContext {
  const { replyTo: _replyTo, rateLimit: _rateLimit, requestSeq: _requestSeq, ...kept } = ctx;
  return withoutRouting(kept);
}
