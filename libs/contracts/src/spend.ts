import { Type, type Static } from '@sinclair/typebox';

/**
 * Spend and fairness: budgets, alerts, priority lanes, token budgets and virtual keys (issue 11).
 * The config sections and the virtual-key record are declared here; `config.ts` composes them.
 * Every object is closed (`additionalProperties: false`): an unknown key is refused with its path.
 */

const closed = { additionalProperties: false } as const;

/** A request's lane: `x-sluice-priority` / `priority`, a feature rule, its key's or its tenant's. */
export const Priority = Type.Union([Type.Literal('critical'), Type.Literal('realtime'), Type.Literal('standard'), Type.Literal('batch'), Type.Literal('low')]);
export type Priority = Static<typeof Priority>;

/** Lanes in the order they are served: a free upstream slot goes to the first lane with work. */
export const LANES = ['critical', 'realtime', 'standard', 'batch', 'low'] as const satisfies readonly Priority[];

/** Per-minute rates, as in `limits`. */
export const Rate = Type.Object(
  {
    requestsPerMinute: Type.Integer({ minimum: 1 }),
    tokensPerMinute: Type.Integer({ minimum: 1 }),
  },
  closed,
);
export type Rate = Static<typeof Rate>;

/** A budget period: a UTC (or `timeZone`) calendar day or month. */
export const BudgetWindow = Type.Union([Type.Literal('daily'), Type.Literal('monthly')]);
export type BudgetWindow = Static<typeof BudgetWindow>;

/** What happens once a budget is spent: refuse with 429 `insufficient_quota`, or route to the cheapest tier. */
export const BudgetAction = Type.Union([Type.Literal('refuse'), Type.Literal('downgrade')]);
export type BudgetAction = Static<typeof BudgetAction>;

/** Budget ids are KV key parts and subject-safe. */
export const BUDGET_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** A spend limit over a window, in USD. */
export const BudgetLimit = Type.Object(
  {
    window: BudgetWindow,
    limitUsd: Type.Number({ exclusiveMinimum: 0 }),
    action: Type.Optional(BudgetAction),
    /** IANA time zone whose calendar the window follows; absent: UTC. */
    timeZone: Type.Optional(Type.String({ minLength: 1 })),
    /** Alert thresholds as fractions of the limit; absent: `alerts.thresholds`. */
    thresholds: Type.Optional(Type.Array(Type.Number({ exclusiveMinimum: 0, maximum: 1 }), { minItems: 1, maxItems: 16 })),
  },
  closed,
);
export type BudgetLimit = Static<typeof BudgetLimit>;

/**
 * A tenant's budget. `scope` says whose spend counts: the whole tenant's, or each user's, each
 * feature's or each virtual key's separately (`match` narrows it to one user, feature or key id).
 */
export const Budget = Type.Object(
  {
    id: Type.String({ pattern: BUDGET_ID_PATTERN.source }),
    scope: Type.Union([Type.Literal('tenant'), Type.Literal('user'), Type.Literal('feature'), Type.Literal('key')]),
    match: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    ...BudgetLimit.properties,
  },
  closed,
);
export type Budget = Static<typeof Budget>;

/** Where budget alerts are POSTed, signed with HMAC-SHA256 under the secret in `secretEnv`. */
export const Webhook = Type.Object(
  {
    id: Type.String({ pattern: BUDGET_ID_PATTERN.source }),
    url: Type.String({ pattern: '^https?://' }),
    /** Name of the environment variable holding the signing secret (secrets never live in config). */
    secretEnv: Type.String({ minLength: 1 }),
    /** Tenants whose alerts go here; absent: every tenant's. */
    tenants: Type.Optional(Type.Array(Type.String())),
  },
  closed,
);
export type Webhook = Static<typeof Webhook>;

export const Alerts = Type.Object(
  {
    /** Fractions of a budget at which `budget.threshold_crossed` is emitted, once per window each. */
    thresholds: Type.Array(Type.Number({ exclusiveMinimum: 0, maximum: 1 }), { minItems: 1, maxItems: 16, default: [0.5, 0.75, 0.9, 1] }),
    webhooks: Type.Array(Webhook, { default: [] }),
    /** Delivery retries: exponential backoff from `initialDelayMs` to `maxDelayMs`, given up after `giveUpAfterMs`. */
    retry: Type.Object(
      {
        initialDelayMs: Type.Integer({ minimum: 10, default: 1000 }),
        maxDelayMs: Type.Integer({ minimum: 10, default: 300_000 }),
        giveUpAfterMs: Type.Integer({ minimum: 1000, default: 86_400_000 }),
        timeoutMs: Type.Integer({ minimum: 100, default: 10_000 }),
      },
      { ...closed, default: {} },
    ),
  },
  { ...closed, default: {} },
);
export type Alerts = Static<typeof Alerts>;

/** One lane's part of the upstream: a cap on its concurrent calls and a guaranteed share of the slots. */
export const Lane = Type.Object(
  {
    /** Fraction of the upstream slots (`invoker.concurrency`) the lane is guaranteed; unused, it is lent to other lanes. */
    share: Type.Number({ minimum: 0, maximum: 1 }),
    /** Never more concurrent upstream calls than this in the lane, even when others leave slots free. */
    maxConcurrency: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  closed,
);
export type Lane = Static<typeof Lane>;

export const Lanes = Type.Object(
  {
    critical: Type.Optional(Lane),
    realtime: Type.Optional(Lane),
    standard: Type.Optional(Lane),
    batch: Type.Optional(Lane),
    low: Type.Optional(Lane),
    /** A request that names no priority gets its feature's lane from here (then the key's, the tenant's, `standard`). */
    features: Type.Record(Type.String(), Priority, { default: {} }),
  },
  { ...closed, default: {} },
);
export type Lanes = Static<typeof Lanes>;

/** The seeds' split (chat 60 %, batch 30 %, internal tools 10 %), over the five lanes. */
export const DEFAULT_LANE_SHARES: Record<Priority, number> = { critical: 0.1, realtime: 0.3, standard: 0.2, batch: 0.3, low: 0.1 };

/**
 * A token budget (the seeds' budget controller): for requests matching every field given, a
 * maximum input (trim the oldest turns, never the system prompt or the last user turn, or refuse
 * with 400 `token_budget_exceeded`), a maximum output, and optionally the model.
 */
export const TokenBudget = Type.Object(
  {
    id: Type.String({ pattern: BUDGET_ID_PATTERN.source }),
    tenant: Type.Optional(Type.String()),
    feature: Type.Optional(Type.String()),
    /** A virtual key's id. */
    key: Type.Optional(Type.String()),
    maxInputTokens: Type.Optional(Type.Integer({ minimum: 1 })),
    onOverflow: Type.Optional(Type.Union([Type.Literal('trim'), Type.Literal('refuse')])),
    maxOutputTokens: Type.Optional(Type.Integer({ minimum: 1 })),
    model: Type.Optional(Type.String({ minLength: 1 })),
  },
  closed,
);
export type TokenBudget = Static<typeof TokenBudget>;

/** Virtual key ids: `key_` and 20 characters of [A-Za-z0-9]. */
export const KEY_ID_PATTERN = /^key_[A-Za-z0-9]{20}$/;

/**
 * A virtual key as stored in the `sluice_keys` bucket under its id. The key itself is never
 * stored: only its SHA-256 (and, during a rotation's grace period, the previous one's).
 */
export const VirtualKey = Type.Object(
  {
    id: Type.String({ pattern: KEY_ID_PATTERN.source }),
    tenant: Type.String(),
    name: Type.String({ minLength: 1, maxLength: 200 }),
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    /** The previous key's hash, valid until `previousExpiresAt` (epoch ms) after a rotation. */
    previousSha256: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$' })),
    previousExpiresAt: Type.Optional(Type.Number()),
    /** Models the key may name; absent: the tenant's. */
    models: Type.Optional(Type.Array(Type.String())),
    /** The key's own rate limits (a layer of its own, between user and tenant). */
    limits: Type.Optional(Rate),
    budget: Type.Optional(BudgetLimit),
    /** Every request with this key goes in this lane, whatever it asks. */
    lane: Type.Optional(Priority),
    /** Where this key's async answers are POSTed when a request names no webhook: an `alerts.webhooks` id of the tenant. */
    webhook: Type.Optional(Type.String()),
    /** Epoch ms after which the key is refused. */
    expiresAt: Type.Optional(Type.Number()),
    metadata: Type.Optional(Type.Record(Type.String(), Type.String({ maxLength: 512 }))),
    createdAt: Type.Number(),
    rotatedAt: Type.Optional(Type.Number()),
    revokedAt: Type.Optional(Type.Number()),
  },
  closed,
);
export type VirtualKey = Static<typeof VirtualKey>;

/** What the pipeline carries of the virtual key a request came with (set by ingress). */
export const RequestKey = Type.Object({
  id: Type.String(),
  limits: Type.Optional(Rate),
  budget: Type.Optional(BudgetLimit),
});
export type RequestKey = Static<typeof RequestKey>;
