import type { ColumnType, Insertable, Updateable } from 'kysely';

export const Outcome = {
  Pending: 'pending',
  /** Kept for later at degrade level 4 (maintenance); answered when the level drops. */
  Held: 'held',
  Completed: 'completed',
  Cached: 'cached',
  Throttled: 'throttled',
  Rejected: 'rejected',
  Shed: 'shed',
  Failed: 'failed',
  /** The client left before the answer ended; billed for what was streamed. */
  Cancelled: 'cancelled',
} as const;
export type Outcome = (typeof Outcome)[keyof typeof Outcome];

/** How a cached answer was found: the same request, a similar one (semantic cache), or one in flight (coalescing). */
export const CacheKind = { Exact: 'exact', Semantic: 'semantic', Coalesced: 'coalesced' } as const;
export type CacheKind = (typeof CacheKind)[keyof typeof CacheKind];

/**
 * Where the price of a request's bill (`cost_usd`, or `saved_usd` of a cached answer) came from:
 * `event`, recorded on the event by the stage that answered (a rebuild bills the same); `config`,
 * the live config's when the ledger projected an event that carries none (events from before
 * prices were recorded: a rebuild after a price change bills those at the new price).
 */
export const PriceSource = { Event: 'event', Config: 'config' } as const;
export type PriceSource = (typeof PriceSource)[keyof typeof PriceSource];

/** USD amounts are Postgres `numeric`; drivers return them as strings so nothing is rounded on the way. Default 0. */
type Money = ColumnType<string, string | undefined, string>;
/** Columns with a database default may be left out of an insert. */
type Defaulted<T> = ColumnType<T, T | undefined, T>;

/** One row per request: who asked, what happened, what it cost. */
export interface RequestsTable {
  request_id: string;
  tenant: string;
  user_id: string | null;
  feature: string | null;
  requested_model: string | null;
  /** The model that answered (the cache's or the upstream's); null when nothing answered. */
  model: string | null;
  deployment: string | null;
  front_door: string | null;
  /** The OpenAI API asked: `chat.completions`, `responses`, `embeddings` (null on rows from before it was kept). */
  endpoint: string | null;
  stream: boolean | null;
  priority: string | null;
  received_at: Date;
  finished_at: Date | null;
  outcome: Outcome;
  error_code: string | null;
  status_code: number | null;
  latency_ms: number | null;
  input_tokens: Defaulted<number>;
  output_tokens: Defaulted<number>;
  cost_usd: Money;
  /** What a cache hit would have cost upstream. */
  saved_usd: Money;
  attempts: number | null;
  cache_hit: Defaulted<boolean>;
  /** Set on cached answers only (outcome `cached`). */
  cache_kind: CacheKind | null;
  /** A cached answer's tokens (input + output): what the upstream would have been asked to serve. */
  saved_tokens: Defaulted<number>;
  /** Input tokens of the semantic cache's embedding call(s) for this request, billed to its tenant. */
  embedding_tokens: Defaulted<number>;
  /** Their cost at the embedding model's input price; not part of `cost_usd` (a cached answer's is 0). */
  embedding_usd: Money;
  /** The canary that matched the request (`ctx.variant.canary`, set on chat.routed); null when none did. */
  canary: string | null;
  /** The variant of that canary the request took. */
  variant: string | null;
  /** Where the price of `cost_usd` / `saved_usd` came from; null until the request is billed (and on rows from before it was kept). */
  price_source: PriceSource | null;
}

export type NewRequest = Insertable<RequestsTable>;
export type RequestPatch = Updateable<RequestsTable>;
