import { costUsd, formatUsd, usdUnits, type Price } from '@sluice/ledger/whatif';

/** Tokens an answer was billed for (OpenAI's usage names). */
interface Tokens {
  prompt_tokens: number;
  completion_tokens: number;
}

/** An upstream answer, priced: the model and deployment that answered, its tokens, the price they are billed at. */
interface Bill {
  model: string;
  deployment: string;
  usage: Tokens;
  /** USD per million tokens (a batch line's batch price); undefined: the model has no price, it costs 0. */
  price: Price | undefined;
}

/** The semantic cache's embedding call: its tokens at the embedding model's input price. */
export interface EmbeddingBill {
  model: string;
  tokens: number;
  price: Price | undefined;
}

/** Layers of the rate limits (`chat.throttled`'s `layer`). */
type Layer = 'user' | 'key' | 'tenant' | 'global';
/** How a cached answer was found (the ledger's `cache_kind`). */
type CacheKind = 'exact' | 'semantic' | 'coalesced';

/**
 * How one request ended, actually or under the candidate: the outcome, and what it was billed.
 * `tier` is the router's tier (absent when it was not routed); `embedding` the semantic lookup's call.
 */
export type Fate = { tier?: string; embedding?: EmbeddingBill } & (
  | { kind: 'completed'; bill: Bill; /** The candidate's: tokens not recorded for this request, estimated. */ estimated?: boolean }
  | { kind: 'cancelled'; bill: Bill }
  /** A cached answer: nothing upstream; `saved` is what the answer would have cost. */
  | { kind: 'cached'; cache: CacheKind; saved: Bill }
  | { kind: 'throttled'; layer: Layer }
  | { kind: 'rejected'; code: string }
  | { kind: 'shed'; code: string }
  /** The router's static answer (degrade level 3): free. */
  | { kind: 'static' }
  /** Held at degrade level 4 and not answered (yet). */
  | { kind: 'held' }
  | { kind: 'failed'; code: string }
  /** No terminal event recorded (still in flight when the stream was read). */
  | { kind: 'pending' }
);

export const OUTCOMES = ['completed', 'cached', 'throttled', 'rejected', 'shed', 'static', 'held', 'failed', 'cancelled', 'pending'] as const;
type OutcomeKind = (typeof OUTCOMES)[number];

/**
 * What a set of requests came to. Money is USD as an exact decimal string (the ledger's
 * arithmetic: integers of 1e-18 USD, no float on the way); tokens are what the upstream billed.
 */
export interface Summary {
  requests: number;
  outcomes: Record<OutcomeKind, number>;
  /** What the requests were billed: upstream answers plus embeddings. */
  costUsd: string;
  upstreamUsd: string;
  embeddingUsd: string;
  /** What the cached answers would have cost upstream. */
  savedUsd: string;
  /** `costUsd` by tenant, and by model (an answer's under the model that answered, an embedding's under the embedding model). */
  costByTenant: Record<string, string>;
  costByModel: Record<string, string>;
  inputTokens: number;
  outputTokens: number;
  /** Requests the router sent upstream, by tier (`explicit`: the client named the model). */
  tiers: Record<string, number>;
  /** Upstream answers (completed and cancelled), by the model and the deployment that answered. */
  models: Record<string, number>;
  deployments: Record<string, number>;
  throttles: Record<string, number>;
  cacheHits: Record<string, number>;
  /** Candidate only: completions whose tokens were not recorded for the request and were estimated (docs/whatif.md). */
  estimatedUsage: number;
}

/** What one request was billed, USD as an exact decimal string: its upstream answer and its embedding (what a budget counts). */
export function billedUsd(f: Fate): string {
  let units = f.embedding ? usdUnits(costUsd(f.embedding.tokens, 0, f.embedding.price)) : 0n;
  if (f.kind === 'completed' || f.kind === 'cancelled') units += usdUnits(costUsd(f.bill.usage.prompt_tokens, f.bill.usage.completion_tokens, f.bill.price));
  return formatUsd(units);
}

/** Adds up fates into a Summary, exactly; `tenants[i]` is the tenant of `fates[i]`. */
export function summarize(fates: readonly Fate[], tenants: readonly string[]): Summary {
  const outcomes = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<OutcomeKind, number>;
  const tiers: Record<string, number> = {};
  const models: Record<string, number> = {};
  const deployments: Record<string, number> = {};
  const throttles: Record<string, number> = {};
  const cacheHits: Record<string, number> = {};
  const bump = (m: Record<string, number>, k: string) => void (m[k] = (m[k] ?? 0) + 1);
  let upstream = 0n;
  let embedding = 0n;
  let saved = 0n;
  let inputTokens = 0;
  let outputTokens = 0;
  let estimatedUsage = 0;
  const byTenant = new Map<string, bigint>();
  const byModel = new Map<string, bigint>();
  const add = (m: Map<string, bigint>, k: string, units: bigint) => m.set(k, (m.get(k) ?? 0n) + units);
  fates.forEach((f, i) => {
    outcomes[f.kind]++;
    if (f.tier !== undefined) bump(tiers, f.tier);
    add(byTenant, tenants[i]!, usdUnits(billedUsd(f)));
    if (f.embedding) {
      const units = usdUnits(costUsd(f.embedding.tokens, 0, f.embedding.price));
      embedding += units;
      add(byModel, f.embedding.model, units);
    }
    switch (f.kind) {
      case 'completed':
      case 'cancelled': {
        const { bill } = f;
        const units = usdUnits(costUsd(bill.usage.prompt_tokens, bill.usage.completion_tokens, bill.price));
        upstream += units;
        add(byModel, bill.model, units);
        inputTokens += bill.usage.prompt_tokens;
        outputTokens += bill.usage.completion_tokens;
        bump(models, bill.model);
        bump(deployments, bill.deployment);
        if (f.kind === 'completed' && f.estimated) estimatedUsage++;
        break;
      }
      case 'cached':
        bump(cacheHits, f.cache);
        saved += usdUnits(costUsd(f.saved.usage.prompt_tokens, f.saved.usage.completion_tokens, f.saved.price));
        break;
      case 'throttled':
        bump(throttles, f.layer);
        break;
      case 'rejected':
      case 'shed':
      case 'static':
      case 'held':
      case 'failed':
      case 'pending':
        break;
      default: {
        const _exhaustive: never = f;
        throw new Error(`unknown fate ${JSON.stringify(_exhaustive)}`);
      }
    }
  });
  const usd = (m: Map<string, bigint>) => sorted(Object.fromEntries([...m].map(([k, units]) => [k, formatUsd(units)])));
  return {
    requests: fates.length,
    outcomes,
    costUsd: formatUsd(upstream + embedding),
    upstreamUsd: formatUsd(upstream),
    embeddingUsd: formatUsd(embedding),
    savedUsd: formatUsd(saved),
    costByTenant: usd(byTenant),
    costByModel: usd(byModel),
    inputTokens,
    outputTokens,
    tiers: sorted(tiers),
    models: sorted(models),
    deployments: sorted(deployments),
    throttles: sorted(throttles),
    cacheHits: sorted(cacheHits),
    estimatedUsage,
  };
}

/** The candidate's USD less the actual's, exact, signed (`-0.5`, `+0.25`, `0`). */
export function usdChange(actual: string, candidate: string): string {
  const d = usdUnits(candidate) - usdUnits(actual);
  if (d === 0n) return '0';
  return d < 0n ? `-${formatUsd(-d)}` : `+${formatUsd(d)}`;
}

/** Keys in byte order, so the JSON and the table do not depend on the order requests came in. */
function sorted<T>(m: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
