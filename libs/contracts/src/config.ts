import { TENANT_ID_PATTERN } from './subjects.js';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { Alerts, Budget, DEFAULT_LANE_SHARES, KEY_ID_PATTERN, LANES, Lanes, Priority, Rate, TokenBudget, type Lane } from './spend.js';
import { isTimeZone } from './budgets.js';

export type { Rate };

/** Every config object is closed: an unknown key is refused with its path, never ignored. */
const closed = { additionalProperties: false } as const;

/**
 * What the cache keeps besides whole answers ended by `stop` (docs/caching.md, Policy): answers cut
 * by `length` (skipped by default: a longer `max_tokens` would have said more), answers that are tool
 * calls (kept: the same question with the same tools asks for the same call), and answers of `n > 1`
 * choices (kept). Degraded and static answers are never kept, whatever the policy.
 */
const CachePolicy = Type.Object(
  {
    length: Type.Union([Type.Literal('skip'), Type.Literal('store')], { default: 'skip' }),
    toolCalls: Type.Union([Type.Literal('skip'), Type.Literal('store')], { default: 'store' }),
    multipleChoices: Type.Union([Type.Literal('skip'), Type.Literal('store')], { default: 'store' }),
  },
  { ...closed, default: {} },
);
export type CachePolicy = Static<typeof CachePolicy>;

/** A similarity threshold: the cosine similarity at or above which a semantic candidate may answer. */
const Threshold = Type.Number({ minimum: 0.5, maximum: 1 });

/** A tenant's own cache settings; absent members take `config.cache`'s. */
const TenantCache = Type.Object(
  {
    /** The semantic cache is opt-in per tenant; `threshold` overrides `config.cache.semantic.threshold`. */
    semantic: Type.Optional(Type.Object({ enabled: Type.Boolean(), threshold: Type.Optional(Threshold) }, closed)),
    /** How long this tenant's answers are served, in seconds: at most `config.cache.ttlSeconds`. */
    ttlSeconds: Type.Optional(Type.Integer({ minimum: 1 })),
    policy: Type.Optional(
      Type.Object(
        {
          length: Type.Optional(CachePolicy.properties.length),
          toolCalls: Type.Optional(CachePolicy.properties.toolCalls),
          multipleChoices: Type.Optional(CachePolicy.properties.multipleChoices),
        },
        closed,
      ),
    ),
  },
  closed,
);
export type TenantCache = Static<typeof TenantCache>;

const Tenant = Type.Object(
  {
    id: Type.String({ pattern: TENANT_ID_PATTERN.source }),
    /**
     * SHA-256 hex digests of the tenant's API keys; the keys themselves are never stored. Required
     * in a config file; absent from the config in `sluice_control`, which every service reads: they
     * are kept apart in `sluice_tenant_keys` (`ConfigKeyHashes`), for ingress and the ledger only.
     */
    keySha256: Type.Optional(Type.Array(Type.String({ pattern: '^[0-9a-f]{64}$' }), { minItems: 1 })),
    /** Models the tenant may name explicitly; absent means every configured model. */
    models: Type.Optional(Type.Array(Type.String())),
    /** Per-tenant limits; absent means `limits.tenantDefault`. */
    limits: Type.Optional(Rate),
    /** Per-user limits inside this tenant; absent means `limits.userDefault`. */
    userLimits: Type.Optional(Rate),
    /** SHA-256 hex digests of keys that may read this tenant's costs, SLOs and timelines from the ledger (and nothing else). */
    readKeySha256: Type.Optional(Type.Array(Type.String({ pattern: '^[0-9a-f]{64}$' }))),
    /** Spend limits in USD per window (issue 11); alerts at `alerts.thresholds`. */
    budgets: Type.Optional(Type.Array(Budget)),
    /** Lane of a request that names none and has no feature or key lane; absent: `standard`. */
    lane: Type.Optional(Priority),
    /** The tenant's cache: semantic opt-in and threshold, TTL, policy (docs/caching.md). */
    cache: Type.Optional(TenantCache),
    ledger: Type.Optional(
      Type.Object(
        {
          /** Keep prompt and answer text on the ledger's timeline; off by default (the timeline shows decisions only). */
          storeContent: Type.Boolean({ default: false }),
        },
        closed,
      ),
    ),
  },
  closed,
);
export type Tenant = Static<typeof Tenant>;

const Deployment = Type.Object(
  {
    /** OpenAI-compatible base URL, e.g. https://api.openai.com/v1. */
    baseUrl: Type.String({ minLength: 1 }),
    /** Name of the environment variable that holds the API key (secrets never live in config). */
    apiKeyEnv: Type.Optional(Type.String()),
    /** Model name the upstream knows, when it differs from the gateway's name. */
    upstreamModel: Type.Optional(Type.String()),
    timeoutMs: Type.Integer({ minimum: 100, default: 30_000 }),
    /**
     * `openai`: any OpenAI-compatible base URL (`baseUrl` ends in `/v1`). `azure`: an Azure OpenAI
     * resource (`baseUrl` is `https://<resource>.openai.azure.com`), called through the SDK's Azure
     * client: `/openai/deployments/<azureDeployment>/...?api-version=<apiVersion>` with an `api-key` header.
     */
    kind: Type.Optional(Type.Union([Type.Literal('openai'), Type.Literal('azure')], { default: 'openai' })),
    /** Azure: the deployment's name in the resource; default the model's upstream name. */
    azureDeployment: Type.Optional(Type.String({ minLength: 1 })),
    /** Azure: the `api-version` query parameter. */
    apiVersion: Type.Optional(Type.String({ minLength: 1, default: '2024-10-21' })),
    /** Its share of a model's traffic among the model's deployments (`balance: weighted`); 0 takes none unless the others are down. */
    weight: Type.Optional(Type.Number({ minimum: 0, default: 1 })),
    /**
     * The upstream serves OpenAI's Files and Batch APIs (OpenAI does, Azure's global-batch
     * deployments do): a batch line routed here is sent in an upstream batch, not called one by
     * one (docs/batches.md, The upstream's Batch API). Default false.
     */
    batchApi: Type.Optional(Type.Boolean({ default: false })),
  },
  closed,
);
export type Deployment = Static<typeof Deployment>;

const Model = Type.Object(
  {
    /** Deployments serving this model, tried in order. */
    deployments: Type.Array(Type.String(), { minItems: 1 }),
    /** Models tried next when every deployment of this one fails. */
    fallback: Type.Array(Type.String(), { default: [] }),
    /**
     * USD per million tokens. The batch prices bill the lines of a batch (`POST /v1/batches`);
     * absent, half the normal prices (OpenAI's Batch API discount).
     */
    price: Type.Object(
      {
        inputPerMTok: Type.Number({ minimum: 0 }),
        outputPerMTok: Type.Number({ minimum: 0 }),
        batchInputPerMTok: Type.Optional(Type.Number({ minimum: 0 })),
        batchOutputPerMTok: Type.Optional(Type.Number({ minimum: 0 })),
      },
      closed,
    ),
    /**
     * How the model's deployments share its traffic: `weighted` (by `deployments[].weight`, latency
     * aware: power of two choices over an EWMA of each deployment's latency; open circuits and
     * paused deployments skipped) or `ordered` (config order; the next only when one fails).
     */
    balance: Type.Optional(Type.Union([Type.Literal('weighted'), Type.Literal('ordered')], { default: 'weighted' })),
    /** Session persistence: a user's requests go to the same deployment while it is healthy. */
    sticky: Type.Optional(Type.Boolean({ default: false })),
  },
  closed,
);
export type Model = Static<typeof Model>;

/** One variant of a canary route: what it changes about the request. */
const Variant = Type.Object(
  {
    name: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }),
    /** Share of the matching traffic, in percent; a canary's variants add up to 100. */
    percent: Type.Number({ minimum: 0, maximum: 100 }),
    /** The model this variant sends to (a configured model), instead of the route's. */
    model: Type.Optional(Type.String()),
    /** One deployment of that model to use, instead of balancing over them. */
    deployment: Type.Optional(Type.String()),
    /** A system message put first (replacing the request's own system message). */
    system: Type.Optional(Type.String()),
    /** Sampling parameters set on the request. */
    params: Type.Optional(
      Type.Object(
        {
          temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 2 })),
          top_p: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
          max_tokens: Type.Optional(Type.Integer({ minimum: 1 })),
        },
        closed,
      ),
    ),
  },
  closed,
);
export type Variant = Static<typeof Variant>;

/**
 * A canary or blue/green split (docs/canaries.md): requests that match are split among the
 * variants by a deterministic hash of the user (the tenant when there is none), so a user stays
 * on one variant. `guard` rolls the non-baseline variants back to 0 % when their error rate
 * exceeds the baseline's by `maxErrorRateDelta` over `windowMs` (a `canary.rolled_back` event).
 */
const Canary = Type.Object(
  {
    id: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }),
    match: Type.Object({ tenant: Type.Optional(Type.String()), feature: Type.Optional(Type.String()), model: Type.Optional(Type.String()) }, closed),
    /** The variant the others are compared with, and the one traffic returns to on a rollback. */
    baseline: Type.String(),
    variants: Type.Array(Variant, { minItems: 1 }),
    guard: Type.Optional(
      Type.Object(
        {
          maxErrorRateDelta: Type.Number({ minimum: 0, maximum: 1 }),
          windowMs: Type.Integer({ minimum: 1000, default: 300_000 }),
          /** Requests a variant needs in the window before it is judged. */
          minRequests: Type.Integer({ minimum: 1, default: 20 }),
        },
        closed,
      ),
    ),
  },
  closed,
);
export type Canary = Static<typeof Canary>;

/** A static answer for a category of questions (degrade level 3), chosen by the question's keywords. */
const StaticAnswer = Type.Object(
  {
    category: Type.String({ minLength: 1 }),
    /** Words or phrases of the last user turn that choose this category (case-insensitive). */
    keywords: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
    answer: Type.String({ minLength: 1 }),
  },
  closed,
);
export type StaticAnswer = Static<typeof StaticAnswer>;

const Tier = Type.Object(
  {
    name: Type.String(),
    model: Type.String(),
    /** Requests whose complexity score is at most this go to this tier (tiers are ordered cheapest first). */
    maxComplexity: Type.Number({ minimum: 0, maximum: 1 }),
  },
  closed,
);
export type Tier = Static<typeof Tier>;

export const SluiceConfig = Type.Object(
  {
    tenants: Type.Array(Tenant, { minItems: 1 }),
    limits: Type.Object(
      {
        global: Rate,
        tenantDefault: Rate,
        userDefault: Rate,
        /**
         * The global layer learns from the upstreams' own rate-limit headers and 429s
         * (`upstream.limits_observed`; docs/adaptive-limits.md): it never exceeds `global`.
         */
        adaptive: Type.Object(
          {
            enabled: Type.Boolean({ default: true }),
            /** A 429 multiplies a deployment's learned rate by this (once per `backoffEveryMs`). */
            backoff: Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1, default: 0.7 }),
            backoffEveryMs: Type.Integer({ minimum: 0, default: 1000 }),
            /** Without 429s the learned rate climbs back by this fraction of its target per `recoveryEveryMs`. */
            recovery: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.05 }),
            recoveryEveryMs: Type.Integer({ minimum: 100, default: 10_000 }),
            /** Back-off never goes below this fraction of the target. */
            floor: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.1 }),
            /** A deployment not heard of for this long is forgotten (and limits nothing). */
            forgetAfterMs: Type.Integer({ minimum: 1000, default: 300_000 }),
          },
          { ...closed, default: {} },
        ),
      },
      closed,
    ),
    deployments: Type.Record(Type.String(), Deployment),
    models: Type.Record(Type.String(), Model),
    /** Ordered cheapest first; `auto` picks by complexity. */
    tiers: Type.Array(Tier, { minItems: 1 }),
    router: Type.Object(
      {
        /** max_tokens applied at degrade level 1 and above. */
        degradedMaxTokens: Type.Integer({ minimum: 1, default: 256 }),
        /** Answer used at degrade level 3. */
        staticFallback: Type.String({ default: 'The assistant is temporarily unavailable. Please try again shortly.' }),
        shedRetryAfterMs: Type.Integer({ minimum: 0, default: 5000 }),
        /** Level 3's answers by category (FAQ, documentation link, human support); `staticFallback` when none matches. */
        staticAnswers: Type.Optional(Type.Array(StaticAnswer, { default: [] })),
      },
      closed,
    ),
    invoker: Type.Object(
      {
        maxAttemptsPerDeployment: Type.Integer({ minimum: 1, default: 3 }),
        baseBackoffMs: Type.Integer({ minimum: 0, default: 100 }),
        maxBackoffMs: Type.Integer({ minimum: 0, default: 5000 }),
        circuitFailureThreshold: Type.Integer({ minimum: 1, default: 5 }),
        circuitOpenMs: Type.Integer({ minimum: 100, default: 30_000 }),
        /** Half-open: trial calls allowed at once, across all invoker replicas. */
        circuitHalfOpenTrials: Type.Optional(Type.Integer({ minimum: 1, default: 1 })),
        /** Half-open: successful trials that close the circuit. */
        circuitSuccessesToClose: Type.Optional(Type.Integer({ minimum: 1, default: 1 })),
        /** Weight of the newest latency in each deployment's moving average (balancing). */
        latencyEwmaAlpha: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.3 })),
        concurrency: Type.Integer({ minimum: 1, default: 256 }),
      },
      closed,
    ),
    cache: Type.Object(
      {
        /** The buckets' max age (nats-server 2.9 has no per-message TTL): the longest any entry is kept. */
        ttlSeconds: Type.Integer({ minimum: 1, default: 3600 }),
        /** Identical requests in flight at once make one upstream call (docs/caching.md, Coalescing). On by default. */
        coalesce: Type.Object(
          {
            enabled: Type.Boolean({ default: true }),
            /** A leader with no answer after this long is taken over by one of the requests waiting for it. */
            leaderTimeoutMs: Type.Integer({ minimum: 100, default: 30_000 }),
          },
          { ...closed, default: {} },
        ),
        /** The semantic cache's gateway-wide settings; each tenant opts in (`tenants[].cache.semantic`). */
        semantic: Type.Object(
          {
            /** The embedding model: a model in `models`, whose deployments embed and whose input price bills it. */
            model: Type.String({ minLength: 1, default: 'text-embedding-3-small' }),
            /** Dimensions asked of the upstream (`dimensions`; text-embedding-3 models shorten their vectors). */
            dimensions: Type.Integer({ minimum: 8, maximum: 4096, default: 256 }),
            /** Default threshold; see docs/caching.md for the range and how it was chosen. */
            threshold: Type.Number({ minimum: 0.5, maximum: 1, default: 0.9 }),
            /** A longer last user turn is looked up exactly only. */
            maxTextChars: Type.Integer({ minimum: 1, default: 2000 }),
            /** Nearest entries checked per lookup, best first (threshold, then the guard). */
            candidates: Type.Integer({ minimum: 1, maximum: 64, default: 4 }),
            /** The embedding call's limit; past it the lookup goes on as a miss. */
            timeoutMs: Type.Integer({ minimum: 50, default: 2000 }),
          },
          { ...closed, default: {} },
        ),
        policy: CachePolicy,
      },
      closed,
    ),
    degrader: Type.Object(
      {
        windowMs: Type.Integer({ minimum: 1000, default: 30_000 }),
        minSamples: Type.Integer({ minimum: 1, default: 20 }),
        /** Failure ratios at which levels 1, 2 and 3 are entered. */
        enterRatios: Type.Array(Type.Number({ minimum: 0, maximum: 1 }), { minItems: 3, maxItems: 3, default: [0.2, 0.5, 0.9] }),
        /** A level is left only when the ratio is below its entry ratio minus this. */
        hysteresis: Type.Number({ minimum: 0, maximum: 1, default: 0.1 }),
        /** A level is held at least this long before it is lowered. */
        minHoldMs: Type.Integer({ minimum: 0, default: 10_000 }),
        /**
         * The leader's lease in `sluice_leases` (key `degrader`): renewed every third of it; a replica
         * takes over only after it ran out, so a leader that crashed is replaced within ~4/3 of it. The
         * replicas' clocks must agree to well within a third of it.
         */
        leaseMs: Type.Optional(Type.Integer({ minimum: 300, default: 6000 })),
        /**
         * p95 upstream latency (over the window, with at least `minSamples` attempts) at or above this
         * calls for level 1, at or above twice this for level 2. 0: latency is not a signal.
         */
        latencyP95TargetMs: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
        /**
         * Messages waiting (num_pending) in the request path's durables (limiter, cache-lookup, router,
         * invoker lanes) summed: at or above this level 1, at or above twice this level 2. 0: off.
         */
        backlogMax: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
        /**
         * The share of tenant-scope budgets on course to overrun their window (spent / limit ahead of
         * the share of the window gone) at or above which level 1 (a cheaper model) is called for. 0: off.
         */
        budgetBurnShare: Type.Optional(Type.Number({ minimum: 0, maximum: 1, default: 0 })),
        /**
         * The share of deployments with an open circuit at or above which level 1 is called for (every
         * deployment open always calls for level 2). 0: off.
         */
        openCircuitShare: Type.Optional(Type.Number({ minimum: 0, maximum: 1, default: 0 })),
        /** How often backlog and budget spend are read (they cost a NATS request per durable and per budget). */
        pollMs: Type.Optional(Type.Integer({ minimum: 100, default: 2000 })),
      },
      closed,
    ),
    ingress: Type.Object(
      {
        maxBodyBytes: Type.Integer({ minimum: 1024, default: 1_048_576 }),
        /** The largest upload `POST /v1/files` takes, in bytes (held whole in memory while stored); past it: 413 file_too_large. */
        maxFileBytes: Type.Optional(Type.Integer({ minimum: 1024, default: 100 * 1024 * 1024 })),
        maxMessages: Type.Integer({ minimum: 1, default: 256 }),
        defaultDeadlineMs: Type.Integer({ minimum: 100, default: 60_000 }),
        /**
         * Requests one ingress process takes at once (docs/input-bounds.md, Overload): HTTP ones from
         * their handler to the end of their answer, NATS ones until published. The one past it is
         * answered 503 `service_busy` at once, with Retry-After 1 s, and never queued.
         */
        maxInFlight: Type.Optional(Type.Integer({ minimum: 1, default: 2048 })),
        /**
         * Messages waiting (num_pending, read every 250 ms) in the request path's durables (limiter,
         * cache-lookup, router, the invoker's lanes but batch) past which every new request, async
         * ones too, is answered 503 `service_busy` at once, and the batch runner submits no lines. 0: no bound.
         */
        maxBacklog: Type.Optional(Type.Integer({ minimum: 0, default: 20_000 })),
        /**
         * The HTTP server's edges, applied live (README, "Ingress HTTP"). The idle timeout is never
         * shorter than `defaultDeadlineMs` + 1 s: a request waiting for its answer moves no bytes.
         */
        http: Type.Object(
          {
            /** Receiving the whole request, body included (not the answer). Past it: 408 request_timeout. */
            requestTimeoutMs: Type.Integer({ minimum: 100, default: 30_000 }),
            /** Receiving the request line and headers; capped by requestTimeoutMs. Past it: 408. */
            headersTimeoutMs: Type.Integer({ minimum: 100, default: 10_000 }),
            /** Longer than a load balancer's idle timeout (60 s on AWS's), so the balancer closes first. */
            keepAliveTimeoutMs: Type.Integer({ minimum: 1000, default: 72_000 }),
            /** No byte either way for this long (e.g. a client that stopped reading): destroyed. */
            idleTimeoutMs: Type.Integer({ minimum: 1000, default: 120_000 }),
            /** Keep under the process's open-file limit, with room for NATS. */
            maxConnections: Type.Integer({ minimum: 1, default: 4096 }),
          },
          { ...closed, default: {} },
        ),
      },
      closed,
    ),
    /** SHA-256 hex digests of admin keys: the admin API (`/admin/v1/...`) and every tenant's ledger data. */
    admin: Type.Object({ keySha256: Type.Array(Type.String({ pattern: '^[0-9a-f]{64}$' }), { default: [] }) }, { ...closed, default: {} }),
    alerts: Alerts,
    lanes: Lanes,
    tokenBudgets: Type.Array(TokenBudget, { default: [] }),
    canaries: Type.Optional(Type.Array(Canary, { default: [] })),
    /** The Batch API's runner on ingress (docs/batches.md). */
    batches: Type.Optional(
      Type.Object(
        {
          /** Lines of one batch in the pipeline at once (submitted, not yet answered): the batch lane is fed, never flooded. */
          maxInFlight: Type.Integer({ minimum: 1, default: 32 }),
          /** How often the runner looks at each running batch. */
          pollMs: Type.Integer({ minimum: 10, default: 250 }),
          /**
           * Lines for a deployment with `batchApi` (the invoker's upstream batches): a Sluice
           * batch's lines are sent in one upstream batch once none has come for `gatherMs`, or
           * at `maxLines`; its status is polled from `pollMs`, doubling to `maxPollMs`.
           */
          upstream: Type.Object(
            {
              gatherMs: Type.Integer({ minimum: 10, default: 2000 }),
              maxLines: Type.Integer({ minimum: 1, maximum: 50_000, default: 1000 }),
              pollMs: Type.Integer({ minimum: 10, default: 1000 }),
              maxPollMs: Type.Integer({ minimum: 10, default: 30_000 }),
            },
            { ...closed, default: {} },
          ),
        },
        { ...closed, default: {} },
      ),
    ),
  },
  closed,
);
export type SluiceConfig = Static<typeof SluiceConfig>;

/** The degrade level and who set it, kept under `degrade` in the control bucket. */
export const DegradeState = Type.Object({
  level: Type.Integer({ minimum: 0, maximum: 4 }),
  /** A level an operator forces; the degrader never goes below it. */
  override: Type.Optional(Type.Integer({ minimum: 0, maximum: 4 })),
  since: Type.Number(),
  reason: Type.String(),
});
export type DegradeState = Static<typeof DegradeState>;

export class ConfigError extends Error {}

export interface ParseOptions {
  /**
   * The config as stored in `sluice_control`, its key hashes kept apart (`splitKeyHashes`): a
   * tenant without `keySha256` is not a mistake there.
   */
  keyHashesApart?: boolean;
}

/**
 * Validates a config value, filling defaults; throws a ConfigError naming the wrong key.
 * Also checks references: tiers, fallbacks and tenant models must name configured models,
 * and models must name configured deployments.
 *
 * @example
 * const config = parseConfig(JSON.parse(readFileSync('config/sluice.json', 'utf8')));
 */
export function parseConfig(value: unknown, opts: ParseOptions = {}): SluiceConfig {
  const withDefaults = Value.Default(SluiceConfig, structuredClone(value)) as Record<string, unknown>;
  // Value.Default does not descend into Record values; fill each entry's defaults here.
  fillRecordDefaults(withDefaults, 'deployments', Deployment);
  fillRecordDefaults(withDefaults, 'models', Model);
  if (!Value.Check(SluiceConfig, withDefaults)) {
    const e = Value.Errors(SluiceConfig, withDefaults).First();
    throw new ConfigError(`config${(e?.path ?? '').replaceAll('/', '.')}: ${e?.message ?? 'invalid'}`);
  }
  const config = withDefaults;
  const problems: string[] = [];
  for (const [name, model] of Object.entries(config.models)) {
    for (const d of model.deployments) if (!config.deployments[d]) problems.push(`config.models.${name}.deployments: unknown deployment ${d}`);
    for (const f of model.fallback) if (!config.models[f]) problems.push(`config.models.${name}.fallback: unknown model ${f}`);
  }
  config.tiers.forEach((t, i) => {
    if (!config.models[t.model]) problems.push(`config.tiers.${i}.model: unknown model ${t.model}`);
  });
  config.tenants.forEach((t, i) => {
    if (!opts.keyHashesApart && t.keySha256 === undefined)
      problems.push(`config.tenants.${i}.keySha256: required (the SHA-256 of each of the tenant's API keys)`);
    for (const m of t.models ?? []) if (!config.models[m]) problems.push(`config.tenants.${i}.models: unknown model ${m}`);
    if (t.cache?.semantic?.enabled && !config.models[config.cache.semantic.model])
      problems.push(
        `config.tenants.${i}.cache.semantic: the embedding model ${config.cache.semantic.model} (config.cache.semantic.model) is not in config.models`,
      );
    if (t.cache?.ttlSeconds !== undefined && t.cache.ttlSeconds > config.cache.ttlSeconds)
      problems.push(
        `config.tenants.${i}.cache.ttlSeconds: ${t.cache.ttlSeconds} is longer than config.cache.ttlSeconds (${config.cache.ttlSeconds}), the longest any entry is kept`,
      );
    const ids = new Set<string>();
    (t.budgets ?? []).forEach((b, j) => {
      if (ids.has(b.id)) problems.push(`config.tenants.${i}.budgets.${j}.id: budget ${b.id} appears twice`);
      ids.add(b.id);
      if (b.timeZone !== undefined && !isTimeZone(b.timeZone)) problems.push(`config.tenants.${i}.budgets.${j}.timeZone: unknown time zone ${b.timeZone}`);
      if (b.scope === 'tenant' && b.match !== undefined)
        problems.push(`config.tenants.${i}.budgets.${j}.match: a tenant budget matches no user, feature or key`);
    });
  });
  const ruleIds = new Set<string>();
  config.tokenBudgets.forEach((r, i) => {
    // the timeline names a rule by its id: two rules with one id could not be told apart
    if (ruleIds.has(r.id)) problems.push(`config.tokenBudgets.${i}.id: token budget ${r.id} appears twice`);
    ruleIds.add(r.id);
    if (r.model !== undefined && !config.models[r.model]) problems.push(`config.tokenBudgets.${i}.model: unknown model ${r.model}`);
    if (r.tenant !== undefined && !config.tenants.some((t) => t.id === r.tenant)) problems.push(`config.tokenBudgets.${i}.tenant: unknown tenant ${r.tenant}`);
    if (r.key !== undefined && !KEY_ID_PATTERN.test(r.key))
      problems.push(`config.tokenBudgets.${i}.key: ${r.key} is not a key id (key_ and 20 letters or digits)`);
    if (r.onOverflow !== undefined && r.maxInputTokens === undefined) problems.push(`config.tokenBudgets.${i}.onOverflow: needs maxInputTokens`);
  });
  config.alerts.webhooks.forEach((w, i) => {
    for (const t of w.tenants ?? []) if (!config.tenants.some((x) => x.id === t)) problems.push(`config.alerts.webhooks.${i}.tenants: unknown tenant ${t}`);
  });
  const canaryIds = new Set<string>();
  (config.canaries ?? []).forEach((c, i) => {
    if (canaryIds.has(c.id)) problems.push(`config.canaries.${i}.id: canary ${c.id} appears twice`);
    canaryIds.add(c.id);
    const names = new Set(c.variants.map((v) => v.name));
    if (names.size !== c.variants.length) problems.push(`config.canaries.${i}.variants: two variants share a name`);
    if (!names.has(c.baseline)) problems.push(`config.canaries.${i}.baseline: no variant is named ${c.baseline}`);
    const percent = c.variants.reduce((sum, v) => sum + v.percent, 0);
    if (Math.abs(percent - 100) > 1e-9) problems.push(`config.canaries.${i}.variants: the percents add up to ${percent}, not 100`);
    c.variants.forEach((v, j) => {
      if (v.model !== undefined && !config.models[v.model]) problems.push(`config.canaries.${i}.variants.${j}.model: unknown model ${v.model}`);
      const model = v.model ?? c.match.model;
      if (
        v.deployment !== undefined &&
        (!config.deployments[v.deployment] || (model !== undefined && !config.models[model]?.deployments.includes(v.deployment)))
      )
        problems.push(`config.canaries.${i}.variants.${j}.deployment: ${v.deployment} is not a deployment of ${model ?? 'the matched model'}`);
    });
  });
  const shares = Object.values(laneSpecs(config)).reduce((sum, l) => sum + l.share, 0);
  if (shares > 1 + 1e-9) problems.push(`config.lanes: the lanes' shares add up to ${shares.toFixed(2)}, more than 1`);
  if (problems.length) throw new ConfigError(problems.join('; '));
  return config;
}

/** Each lane's spec, the defaults (`DEFAULT_LANE_SHARES`) where config leaves one out. */
export function laneSpecs(config: Pick<SluiceConfig, 'lanes'>): Record<Priority, Lane> {
  return Object.fromEntries(LANES.map((l) => [l, config.lanes[l] ?? { share: DEFAULT_LANE_SHARES[l] }])) as Record<Priority, Lane>;
}

function fillRecordDefaults(config: Record<string, unknown>, key: string, schema: TSchema): void {
  const record = config[key];
  if (!record || typeof record !== 'object' || Array.isArray(record)) return;
  for (const [name, entry] of Object.entries(record)) {
    (record as Record<string, unknown>)[name] = Value.Default(schema, entry);
  }
}

/** Replaces `${NAME}` and `${NAME:-default}` in string values with environment variables. */
export function interpolateEnv(value: unknown, env: Record<string, string | undefined>): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Z0-9_]+)(?::-([^}]*))?\}/g, (_, name: string, fallback?: string) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (fallback !== undefined) return fallback;
      throw new ConfigError(`config refers to \${${name}}, which is not set`);
    });
  }
  if (Array.isArray(value)) return value.map((v) => interpolateEnv(v, env));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateEnv(v, env)]));
  }
  return value;
}
