import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { ChatRequest, RequestContext } from './request.js';
import { Usage } from './reply.js';
import { Errors, type ErrorCode } from './errors.js';
import { BudgetAction, BudgetWindow, Priority } from './spend.js';
import { Reservation } from './budgets.js';
import { BatchEndpoint, BatchLineError, BatchRequestCounts, BatchUsage } from './batches.js';

/**
 * The event vocabulary. Every decision a service takes is one of these, published to
 * `sluice.evt.<type>.<tenant>` in the SLUICE_EVENTS stream.
 */
export const EventType = {
  ChatRequested: 'chat.requested',
  ChatRejected: 'chat.rejected',
  ChatAdmitted: 'chat.admitted',
  ChatThrottled: 'chat.throttled',
  CacheHit: 'cache.hit',
  CacheMissed: 'cache.missed',
  CacheStored: 'cache.stored',
  CacheCoalesced: 'cache.coalesced',
  ChatRouted: 'chat.routed',
  ChatShed: 'chat.shed',
  ChatHeld: 'chat.held',
  InvokeAttempted: 'invoke.attempted',
  InvokeFailed: 'invoke.failed',
  CircuitOpened: 'circuit.opened',
  CircuitClosed: 'circuit.closed',
  ChatCompleted: 'chat.completed',
  ChatFailed: 'chat.failed',
  ChatCancelled: 'chat.cancelled',
  DegradeChanged: 'degrade.changed',
  EventParked: 'event.parked',
  BudgetThresholdCrossed: 'budget.threshold_crossed',
  AlertDeliveryAttempted: 'alert.delivery_attempted',
  KeyCreated: 'key.created',
  KeyRotated: 'key.rotated',
  KeyRevoked: 'key.revoked',
  UpstreamLimitsObserved: 'upstream.limits_observed',
  CircuitHalfOpened: 'circuit.half_opened',
  DeploymentPaused: 'deployment.paused',
  CanaryRolledBack: 'canary.rolled_back',
  ResultDeliveryAttempted: 'result.delivery_attempted',
  BatchCreated: 'batch.created',
  BatchValidated: 'batch.validated',
  BatchFailed: 'batch.failed',
  BatchCompleted: 'batch.completed',
  BatchCancelled: 'batch.cancelled',
  BatchExpired: 'batch.expired',
  UpstreamBatchQueued: 'upstream_batch.queued',
  UpstreamBatchSubmitted: 'upstream_batch.submitted',
  UpstreamBatchCompleted: 'upstream_batch.completed',
} as const;
export type EventType = (typeof EventType)[keyof typeof EventType];

export const ServiceName = {
  Ingress: 'ingress',
  Limiter: 'limiter',
  Cache: 'cache',
  Router: 'router',
  Invoker: 'invoker',
  Ledger: 'ledger',
  Degrader: 'degrader',
} as const;
export type ServiceName = (typeof ServiceName)[keyof typeof ServiceName];

/**
 * Model and deployment name of the router's static answer (degrade level 3). The cache never
 * stores it; its chat.completed is priced at zero (`STATIC_PRICE`) and the ledger's SLOs count it
 * as degraded, not as a success.
 */
export const STATIC_FALLBACK = 'static-fallback';

/** Tenant token used in subjects for events that belong to no tenant (circuits, degradation). */
export const SYSTEM_TENANT = '_system';
/** Tenant token for rejections before a tenant is known (missing or wrong key). */
export const UNKNOWN_TENANT = '_unknown';

/** A rate-limit layer: the user's, the virtual key's, the tenant's, or the global (upstream) one. */
const Layer = Type.Union([Type.Literal('user'), Type.Literal('key'), Type.Literal('tenant'), Type.Literal('global')]);
/** A code of the error catalogue: what a refused, shed or failed request's client was told. */
const Code = Type.Union((Object.keys(Errors) as ErrorCode[]).map((code) => Type.Literal(code)));
const LimitKind = Type.Union([Type.Literal('requests'), Type.Literal('tokens')]);
const Candidate = Type.Object({ model: Type.String(), deployment: Type.String() });
export type Candidate = Static<typeof Candidate>;

/**
 * The price an answer's tokens were billed at, USD per million tokens, recorded by the stage that
 * answered as its live config had it then: the ledger bills the event with it (not with today's
 * config), so a rebuild after a price change gives the totals the ledger showed before (docs/ledger.md).
 * Optional on every event that carries it, so events from before it was recorded still parse.
 */
const BilledPrice = Type.Object({
  inputPerMTok: Type.Number({ minimum: 0 }),
  outputPerMTok: Type.Number({ minimum: 0 }),
  /** True for a batch line: the model's batch prices, or half its normal ones where the config sets none. */
  batch: Type.Optional(Type.Boolean()),
  /**
   * `config`: `models.<model>.price` of the answering stage's config; `unpriced`: the model has no
   * price there (billed 0); `static`: the router's static answer (degrade level 3), no upstream called.
   */
  source: Type.Union([Type.Literal('config'), Type.Literal('unpriced'), Type.Literal('static')]),
});
export type BilledPrice = Static<typeof BilledPrice>;

/** A model's price as the config states it (`models.<name>.price`), USD per million tokens. */
export interface ModelPrice {
  inputPerMTok: number;
  outputPerMTok: number;
  batchInputPerMTok?: number;
  batchOutputPerMTok?: number;
}

/**
 * The price `model`'s tokens are billed at under `models` (a config's `models`), for the event
 * that records the answer: a batch line's at the model's batch prices (half its normal ones where
 * the config sets none, OpenAI's Batch API discount); a model without a price at 0 (`unpriced`).
 * Pure.
 *
 * @example
 * billedPrice(config.models, 'gpt-4o-mini', false) // { inputPerMTok: 0.15, outputPerMTok: 0.6, source: 'config' }
 * billedPrice(config.models, 'gpt-4o-mini', true) // { inputPerMTok: 0.075, outputPerMTok: 0.3, batch: true, source: 'config' }
 */
export function billedPrice(models: Readonly<Record<string, { price: ModelPrice } | undefined>>, model: string, batch: boolean): BilledPrice {
  const price = Object.prototype.hasOwnProperty.call(models, model) ? models[model]?.price : undefined;
  const line = batch ? { batch: true } : {};
  if (!price) return { inputPerMTok: 0, outputPerMTok: 0, ...line, source: 'unpriced' };
  if (!batch) return { inputPerMTok: price.inputPerMTok, outputPerMTok: price.outputPerMTok, source: 'config' };
  return {
    inputPerMTok: price.batchInputPerMTok ?? price.inputPerMTok / 2,
    outputPerMTok: price.batchOutputPerMTok ?? price.outputPerMTok / 2,
    ...line,
    source: 'config',
  };
}

/** The static answer's price (degrade level 3): nothing was called, nothing is billed. */
export const STATIC_PRICE: BilledPrice = { inputPerMTok: 0, outputPerMTok: 0, source: 'static' };

/** The answer a terminal stage hands to the client, the cache and the ledger. */
const Answer = Type.Object({
  /** Sluice's name of the model that answered: what the ledger prices. */
  model: Type.String(),
  /** The upstream's OpenAI object, whole (see `ChatResult.body`); assembled from the chunks of a streamed answer. */
  body: Type.Unknown(),
  usage: Usage,
});
export type Answer = Static<typeof Answer>;

/**
 * An embedding the semantic cache asked of an upstream through one of Sluice's deployments: billed
 * to the request's tenant at the embedding model's input price (docs/caching.md).
 */
const EmbeddingUse = Type.Object({
  model: Type.String(),
  deployment: Type.String(),
  usage: Type.Object({ prompt_tokens: Type.Integer({ minimum: 0 }), total_tokens: Type.Integer({ minimum: 0 }) }),
  latencyMs: Type.Number({ minimum: 0 }),
  /** The embedding model's price when the call was made (its input price bills `prompt_tokens`). */
  price: Type.Optional(BilledPrice),
});
export type EmbeddingUse = Static<typeof EmbeddingUse>;

/** What the semantic step of a lookup found, for the timeline (all optional: a step may not have run). */
const SemanticLookup = Type.Object({
  /** Why no semantic lookup ran: the tenant did not opt in, the request is not eligible, the embedding failed... */
  skipped: Type.Optional(Type.String()),
  /** The best candidate's cosine similarity, and the threshold it was held to. */
  similarity: Type.Optional(Type.Number()),
  threshold: Type.Optional(Type.Number()),
  /** The request whose answer the best candidate is, and its exact key. */
  matchedRequestId: Type.Optional(Type.String()),
  matchedKey: Type.Optional(Type.String()),
  /** The guard's reason when a candidate at or above the threshold would have changed the meaning. */
  vetoed: Type.Optional(Type.String()),
});
export type SemanticLookup = Static<typeof SemanticLookup>;

/** An upstream's own error, passed to the client as it was (status, OpenAI's type, code, param, message). */
const UpstreamError = Type.Object({
  status: Type.Integer(),
  type: Type.String(),
  code: Type.Union([Type.String(), Type.Null()]),
  param: Type.Union([Type.String(), Type.Null()]),
  message: Type.String(),
});
export type UpstreamError = Static<typeof UpstreamError>;

/** How a batch ended: its counts, usage and files. */
const BatchEnd = Type.Object({
  requestCounts: BatchRequestCounts,
  usage: BatchUsage,
  outputFileId: Type.Union([Type.String(), Type.Null()]),
  errorFileId: Type.Union([Type.String(), Type.Null()]),
});

/** One signed POST to a configured webhook (a budget alert's, an async answer's): its outcome and when the next try is. */
const DeliveryAttempt = {
  webhook: Type.String(),
  attempt: Type.Integer({ minimum: 1 }),
  ok: Type.Boolean(),
  status: Type.Optional(Type.Integer()),
  error: Type.Optional(Type.String()),
  latencyMs: Type.Number(),
  /** When the next attempt is due, ms from now; absent when delivered or given up. */
  retryInMs: Type.Optional(Type.Integer({ minimum: 0 })),
};

/** Data of each event type. */
export const EventData = {
  /** The one event that carries the client's body, as sent (opaque OpenAI JSON). */
  'chat.requested': Type.Object({ ctx: RequestContext, body: Type.Unknown() }),
  'chat.rejected': Type.Object({
    code: Code,
    status: Type.Integer(),
    message: Type.String(),
    stage: Type.String(),
    /** What was known of the request when it was refused (never the key). */
    model: Type.Optional(Type.String()),
    user: Type.Optional(Type.String()),
    replyTo: Type.Optional(Type.String()),
    receivedAt: Type.Optional(Type.Number()),
    /** When asking again can succeed (a spent budget's reset), for the client's Retry-After. */
    retryAfterMs: Type.Optional(Type.Integer({ minimum: 0 })),
  }),
  'chat.admitted': Type.Object({
    ctx: RequestContext,
    estimatedTokens: Type.Integer(),
    /** The budgets the request was admitted against and its estimated cost reserved on them (`budgets.ts`). */
    budgets: Type.Optional(Reservation),
  }),
  'chat.throttled': Type.Object({
    layer: Layer,
    limit: LimitKind,
    retryAfterMs: Type.Integer(),
    replyTo: Type.Optional(Type.String()),
    receivedAt: Type.Number(),
  }),
  'cache.hit': Type.Object({
    ctx: RequestContext,
    /** The key of the answer served: the request's own (exact), or the matched entry's (semantic). */
    key: Type.String(),
    answer: Answer,
    storedAt: Type.Number(),
    /** `exact` (absent on events from before semantic hits) or `semantic`. */
    kind: Type.Optional(Type.Union([Type.Literal('exact'), Type.Literal('semantic')])),
    /** Semantic hits: the cosine similarity of the question to the matched one, and whose answer it is. */
    similarity: Type.Optional(Type.Number()),
    matchedRequestId: Type.Optional(Type.String()),
    /** The embedding the semantic lookup paid for. */
    embedding: Type.Optional(EmbeddingUse),
    /** The answering model's price when the hit was served: what `savedUsd` is computed at. */
    price: Type.Optional(BilledPrice),
  }),
  'cache.missed': Type.Object({
    ctx: RequestContext,
    key: Type.Optional(Type.String()),
    estimatedTokens: Type.Integer(),
    semantic: Type.Optional(SemanticLookup),
    /** The embedding the semantic lookup paid for, even though it found nothing. */
    embedding: Type.Optional(EmbeddingUse),
    /** True when this request leads the coalescing of its key (`ctx.coalesce`); why, when it took over from another. */
    leads: Type.Optional(Type.Boolean()),
    takeover: Type.Optional(Type.String()),
  }),
  'cache.stored': Type.Object({
    key: Type.String(),
    model: Type.String(),
    /** How long the entry is served: the request's, the tenant's or the bucket's TTL, the shortest. */
    ttlSeconds: Type.Integer(),
    /** Epoch ms after which the entry is no longer served. */
    expiresAt: Type.Optional(Type.Number()),
  }),
  /**
   * Terminal: an identical request (same exact key) was in flight when this one arrived, and this
   * one was answered with its answer (docs/caching.md, Coalescing). Billed as a cache hit.
   */
  'cache.coalesced': Type.Object({
    ctx: RequestContext,
    key: Type.String(),
    answer: Answer,
    /** The request whose upstream call answered this one. */
    leaderRequestId: Type.String(),
    /** ms this request waited for the leader's answer. */
    waitedMs: Type.Number({ minimum: 0 }),
    /** The answering model's price when this request was answered: what its saving is computed at. */
    price: Type.Optional(BilledPrice),
  }),
  'chat.routed': Type.Object({
    ctx: RequestContext,
    tier: Type.String(),
    /** The request's lane (`ctx.request.priority`): a token of the event's subject (`Subjects.routed`). */
    lane: Priority,
    candidates: Type.Array(Candidate, { minItems: 1 }),
    maxTokens: Type.Optional(Type.Integer()),
    degradeLevel: Type.Integer(),
    cacheKey: Type.Optional(Type.String()),
  }),
  'chat.shed': Type.Object({
    code: Code,
    retryAfterMs: Type.Integer(),
    degradeLevel: Type.Integer(),
    replyTo: Type.Optional(Type.String()),
    receivedAt: Type.Number(),
  }),
  /**
   * Degrade level 4 (maintenance): the router keeps the cache miss in the stream instead of
   * answering it; the client got a `held` reply (HTTP 202). The router's `router-held` consumer
   * takes these in order once the level is below 2 and routes each as it would have (chat.routed,
   * or chat.shed for a model gone since), answering on `sluice.results.<requestId>`.
   */
  'chat.held': Type.Object({
    ctx: RequestContext,
    key: Type.Optional(Type.String()),
    estimatedTokens: Type.Integer(),
    degradeLevel: Type.Integer(),
  }),
  'invoke.attempted': Type.Object({
    attempt: Type.Integer(),
    model: Type.String(),
    deployment: Type.String(),
    ok: Type.Boolean(),
    latencyMs: Type.Number(),
    status: Type.Optional(Type.Integer()),
    /**
     * On a request's first attempt: ms it waited in its lane, from chat.routed's `at` to the
     * invoker taking it from the stream (across redeliveries, from the first routing).
     */
    queuedMs: Type.Optional(Type.Number({ minimum: 0 })),
  }),
  'invoke.failed': Type.Object({
    attempt: Type.Integer(),
    model: Type.String(),
    deployment: Type.String(),
    status: Type.Optional(Type.Integer()),
    error: Type.String(),
    retryable: Type.Boolean(),
    retryAfterMs: Type.Optional(Type.Integer()),
    latencyMs: Type.Number(),
  }),
  'circuit.opened': Type.Object({ deployment: Type.String(), failures: Type.Integer(), openForMs: Type.Integer() }),
  'circuit.closed': Type.Object({ deployment: Type.String() }),
  /** The open time passed: a limited number of trial calls may go (`invoker.circuitHalfOpenTrials`, across replicas). */
  'circuit.half_opened': Type.Object({ deployment: Type.String() }),
  /**
   * A deployment answered 429 with Retry-After: no replica sends it anything until `until` (epoch
   * ms). A pause is not a failure: it does not count towards the circuit.
   */
  'deployment.paused': Type.Object({ deployment: Type.String(), retryAfterMs: Type.Integer({ minimum: 0 }), until: Type.Number() }),
  /** A canary's guard sent its traffic back to the baseline: the variant's error rate against the baseline's over the window. */
  'canary.rolled_back': Type.Object({
    canary: Type.String(),
    variant: Type.String(),
    baseline: Type.String(),
    errorRate: Type.Number(),
    baselineErrorRate: Type.Number(),
    requests: Type.Integer({ minimum: 0 }),
    baselineRequests: Type.Integer({ minimum: 0 }),
    windowMs: Type.Integer({ minimum: 0 }),
    maxErrorRateDelta: Type.Number(),
  }),
  'chat.completed': Type.Object({
    ctx: RequestContext,
    answer: Answer,
    deployment: Type.String(),
    attempts: Type.Integer(),
    upstreamLatencyMs: Type.Number(),
    cacheKey: Type.Optional(Type.String()),
    /** ms the request waited in its lane before the invoker took it (as on its first invoke.attempted). */
    queuedMs: Type.Optional(Type.Number({ minimum: 0 })),
    /** What `answer.usage` is billed at: `answer.model`'s price (a batch line's batch price) when it answered. */
    price: Type.Optional(BilledPrice),
  }),
  'chat.failed': Type.Object({
    code: Code,
    status: Type.Integer(),
    message: Type.String(),
    attempts: Type.Integer(),
    replyTo: Type.Optional(Type.String()),
    receivedAt: Type.Number(),
    /** Set when the code is the upstream's own refusal (`upstream_rejected`) or its 429: what the client was told. */
    upstream: Type.Optional(UpstreamError),
  }),
  /**
   * The client left (closed its HTTP connection, or published to `Subjects.cancel`) before the
   * answer ended: the upstream call was stopped. `usage` is what was streamed so far, billed.
   */
  'chat.cancelled': Type.Object({
    ctx: RequestContext,
    model: Type.String(),
    deployment: Type.String(),
    attempts: Type.Integer(),
    usage: Usage,
    /** True when the upstream sent no usage and the tokens were counted with the tokenizer. */
    counted: Type.Boolean(),
    /** What `usage` is billed at: `model`'s price (a batch line's batch price) when the call was stopped. */
    price: Type.Optional(BilledPrice),
  }),
  'degrade.changed': Type.Object({
    from: Type.Integer({ minimum: 0, maximum: 4 }),
    to: Type.Integer({ minimum: 0, maximum: 4 }),
    signals: Type.Record(Type.String(), Type.Number()),
    manual: Type.Boolean(),
    /** The signals that caused the change, each in words (`error ratio 0.42 ≥ 0.2`). */
    causes: Type.Optional(Type.Array(Type.String())),
  }),
  /**
   * A consumer gave up on an event after a bounded number of tries and parked it in the
   * dead-letter stream (SLUICE_DLQ) instead of blocking on it. The event keeps the parked
   * event's request id and tenant, so it shows on that request's timeline.
   */
  'event.parked': Type.Object({
    /** The durable consumer that gave up (its replay subject is `Subjects.replay(durable)`). */
    durable: Type.String(),
    /** Sequence of the parked event in SLUICE_EVENTS (or in SLUICE_DLQ for a failed replay). */
    streamSeq: Type.Integer({ minimum: 0 }),
    subject: Type.String(),
    /** The parked event's type, when it could be read. */
    eventType: Type.Optional(Type.String()),
    /** The last error, one line, at most 500 characters. */
    error: Type.String(),
    deliveries: Type.Integer({ minimum: 0 }),
  }),
  /**
   * A budget's spend reached one of its alert thresholds in a window. Emitted by the ledger
   * from its exact projection, once per budget, window and threshold (a replay or a restart
   * never emits it again); also published on `sluice.alerts.<tenant>` and POSTed to webhooks.
   */
  'budget.threshold_crossed': Type.Object({
    /** The budget's id (`key:<keyId>` for a virtual key's own budget). */
    budget: Type.String(),
    /** The spend counter: budget, and the user, feature or key it counts for (hashed where it is a user). */
    budgetKey: Type.String(),
    scope: Type.String(),
    window: BudgetWindow,
    /** The window's id (`2026-11-30`, `2026-11`) and when it resets (epoch ms). */
    windowId: Type.String(),
    resetsAt: Type.Number(),
    /** The fraction of the limit crossed, e.g. 0.75. */
    threshold: Type.Number(),
    limitUsd: Type.Number(),
    /** Spend when it was crossed, an exact decimal string. */
    spentUsd: Type.String(),
    action: BudgetAction,
  }),
  /** One attempt to POST an alert to a webhook; the alert is its event id. */
  'alert.delivery_attempted': Type.Object({ alertId: Type.String(), ...DeliveryAttempt }),
  /**
   * One POST of an async request's answer to the webhook it named (`x-sluice-webhook`, an
   * `alerts.webhooks` id): the event's request id is the request's. Retried like alerts.
   */
  'result.delivery_attempted': Type.Object(DeliveryAttempt),
  /** An admin created a virtual key (the key itself is never in an event). */
  'key.created': Type.Object({ keyId: Type.String(), name: Type.String() }),
  'key.rotated': Type.Object({ keyId: Type.String(), name: Type.String(), previousValidUntil: Type.Optional(Type.Number()) }),
  'key.revoked': Type.Object({ keyId: Type.String(), name: Type.String() }),
  /**
   * What a deployment's answer said of its own rate limits (OpenAI's x-ratelimit-* headers, or a
   * 429 with Retry-After): the limiter's global bucket for it adapts.
   */
  'upstream.limits_observed': Type.Object({
    deployment: Type.String(),
    status: Type.Integer(),
    /** True for a 429 from the upstream. */
    throttled: Type.Boolean(),
    retryAfterMs: Type.Optional(Type.Integer({ minimum: 0 })),
    limitRequests: Type.Optional(Type.Integer({ minimum: 0 })),
    remainingRequests: Type.Optional(Type.Integer({ minimum: 0 })),
    resetRequestsMs: Type.Optional(Type.Integer({ minimum: 0 })),
    limitTokens: Type.Optional(Type.Integer({ minimum: 0 })),
    remainingTokens: Type.Optional(Type.Integer({ minimum: 0 })),
    resetTokensMs: Type.Optional(Type.Integer({ minimum: 0 })),
  }),
  /** A tenant created a batch (`POST /v1/batches`); the event's request id is the batch id. */
  'batch.created': Type.Object({
    endpoint: BatchEndpoint,
    inputFileId: Type.String(),
    metadata: Type.Union([Type.Record(Type.String(), Type.String()), Type.Null()]),
  }),
  /** Its input file passed validation: its lines go into the batch lane. */
  'batch.validated': Type.Object({ lines: Type.Integer({ minimum: 1 }), model: Type.Union([Type.String(), Type.Null()]) }),
  /** Its input file failed validation: OpenAI's per-line errors (at most the first 1,000 here; all on the batch). */
  'batch.failed': Type.Object({ errors: Type.Array(BatchLineError), total: Type.Integer({ minimum: 0 }) }),
  /** Every line has an answer: the output and error files are written. */
  'batch.completed': BatchEnd,
  /** Cancelled: the lines submitted were answered, the rest are `batch_cancelled` in the error file. */
  'batch.cancelled': BatchEnd,
  /** Not done 24 h after creation: lines without an answer are `batch_expired` in the error file. */
  'batch.expired': BatchEnd,
  /**
   * A batch line (`ctx.batch`) routed to a deployment with `batchApi`: it goes in an upstream batch
   * instead of being called (the invoker's routing decision). The request id is the line's.
   */
  'upstream_batch.queued': Type.Object({ batchId: Type.String(), customId: Type.String(), model: Type.String(), deployment: Type.String() }),
  /**
   * Lines of one Sluice batch sent to a deployment's Batch API as one upstream batch (its JSONL
   * uploaded, the batch created). The request id is the Sluice batch's; `group` names the set.
   */
  'upstream_batch.submitted': Type.Object({
    group: Type.String(),
    deployment: Type.String(),
    upstreamBatchId: Type.String(),
    inputFileId: Type.String(),
    lines: Type.Integer({ minimum: 1 }),
  }),
  /** The upstream batch ended (`completed`, `failed`, `expired`, `cancelled`) and each of its lines was answered from its files. */
  'upstream_batch.completed': Type.Object({
    group: Type.String(),
    deployment: Type.String(),
    upstreamBatchId: Type.String(),
    status: Type.String(),
    completed: Type.Integer({ minimum: 0 }),
    failed: Type.Integer({ minimum: 0 }),
  }),
} satisfies Record<EventType, TSchema>;

export type EventDataOf<T extends EventType> = Static<(typeof EventData)[T]>;

/**
 * One event. `id` is deterministic (request id + type + attempt) and is sent as
 * `Nats-Msg-Id`, so a redelivered input that is handled again publishes a duplicate the
 * stream drops.
 */
export interface SluiceEvent<T extends EventType = EventType> {
  id: string;
  type: T;
  requestId: string;
  tenant: string;
  service: ServiceName;
  /** Epoch milliseconds when the deciding service took the decision. */
  at: number;
  /** Why, in words a person reads on the timeline. */
  reason: string;
  data: EventDataOf<T>;
}

export type AnyEvent = { [T in EventType]: SluiceEvent<T> }[EventType];

const Envelope = Type.Object({
  id: Type.String({ minLength: 1 }),
  type: Type.String(),
  requestId: Type.String(),
  tenant: Type.String({ minLength: 1 }),
  service: Type.String(),
  at: Type.Number(),
  reason: Type.String(),
  data: Type.Unknown(),
});
const envelopeCheck = TypeCompiler.Compile(Envelope);
const dataChecks: Record<string, TypeCheck<TSchema>> = Object.fromEntries(
  Object.entries(EventData).map(([type, schema]): [string, TypeCheck<TSchema>] => [type, TypeCompiler.Compile(schema as TSchema)]),
);

export function isEventType(type: string): type is EventType {
  return Object.prototype.hasOwnProperty.call(dataChecks, type);
}

/** Validates an event read from the stream; returns the first problem, or undefined when it is well formed. */
export function eventProblem(value: unknown): string | undefined {
  if (!envelopeCheck.Check(value)) {
    const e = envelopeCheck.Errors(value).First();
    return `envelope${e?.path ?? ''}: ${e?.message ?? 'invalid'}`;
  }
  const type = (value as { type: string }).type;
  if (!isEventType(type)) return `unknown event type ${type}`;
  const check = dataChecks[type]!;
  const data = (value as { data: unknown }).data;
  if (!check.Check(data)) {
    const e = check.Errors(data).First();
    return `${type} data${e?.path ?? ''}: ${e?.message ?? 'invalid'}`;
  }
  return undefined;
}

const decoder = new TextDecoder();

/** Parses and validates an event; throws with the first problem. */
export function parseEvent(bytes: Uint8Array | string): AnyEvent {
  const value: unknown = JSON.parse(typeof bytes === 'string' ? bytes : decoder.decode(bytes));
  const problem = eventProblem(value);
  if (problem) throw new Error(`malformed event: ${problem}`);
  return value as AnyEvent;
}

/** Builds an event with its deterministic id. `suffix` separates several events of one type per request (attempts). */
export function makeEvent<T extends EventType>(
  type: T,
  fields: { requestId: string; tenant: string; service: ServiceName; at: number; reason: string; suffix?: string | number },
  data: EventDataOf<T>,
): SluiceEvent<T> {
  const id = `${fields.requestId || fields.tenant}:${type}${fields.suffix === undefined ? '' : `:${fields.suffix}`}`;
  return { id, type, requestId: fields.requestId, tenant: fields.tenant, service: fields.service, at: fields.at, reason: fields.reason, data };
}

/**
 * The event types that end a request, one per outcome the ledger records (completed, cached,
 * throttled, rejected, shed, failed, cancelled). A request has exactly one of them.
 */
export const TERMINAL_TYPES: ReadonlySet<EventType> = new Set<EventType>([
  EventType.ChatCompleted,
  EventType.CacheHit,
  EventType.CacheCoalesced,
  EventType.ChatThrottled,
  EventType.ChatRejected,
  EventType.ChatShed,
  EventType.ChatFailed,
  EventType.ChatCancelled,
]);

/**
 * The Nats-Msg-Id an event is published under: its id, except that every terminal event of one
 * request shares `<requestId>:end`. Two stages may each decide a request's end (a limiter whose
 * ack was lost in a node's death is redelivered the request past its deadline and fails it, while
 * the invoker completes the admission it made first); the stream keeps whichever is first within
 * its duplicate window and drops the other, so the ledger sees one outcome. A publisher whose
 * terminal event came back a duplicate of another type sends no reply (bus `carryOut`).
 *
 * @example
 * msgIdOf(completed); // 'req_1:end'
 * msgIdOf(admitted); // 'req_1:chat.admitted'
 */
export function msgIdOf(e: Pick<AnyEvent, 'id' | 'type' | 'requestId'>): string {
  return e.requestId && TERMINAL_TYPES.has(e.type) ? `${e.requestId}:end` : e.id;
}

export { ChatRequest };
