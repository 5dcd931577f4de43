import { sql, type RawBuilder } from 'kysely';
import type { Db } from './db.js';
import { groupedReport, type GroupedReport } from './grouped.js';
import { dimensionSql as costDimensionSql } from './costs.js';
import type { CacheDimension, CacheQuery } from './params.js';

/** One group's (or the total's) cache savings. Money is USD as a number rounded to 1e-6 (sums and differences are exact in the database). */
interface CacheFigures {
  /** Requests answered: upstream or from the cache. */
  requests: number;
  /** Answered from the cache, of any kind. */
  hits: number;
  hitsByKind: { exact: number; semantic: number; coalesced: number };
  /** hits / requests; null without requests. */
  hitRate: number | null;
  /** Input + output tokens of the cached answers: what the upstream was not asked to serve. */
  tokensSaved: number;
  /** What the cached answers would have cost upstream, at the answering model's price. */
  savedUsd: number;
  embeddingTokens: number;
  /** What the semantic cache's embedding calls cost, hits and misses alike (the price of looking). */
  embeddingUsd: number;
  /** savedUsd − embeddingUsd: negative when the semantic cache costs more than it saves. */
  netSavedUsd: number;
}

export type CacheReport = GroupedReport<CacheDimension, CacheFigures>;

const dimensionSql: Record<CacheDimension, RawBuilder<string | null>> = {
  tenant: costDimensionSql.tenant,
  model: costDimensionSql.model,
  day: costDimensionSql.day,
  // a request not answered from the cache is a miss, whether the upstream answered it or not
  kind: sql`coalesce(cache_kind, 'miss')`,
};

const figures = [
  sql<string>`count(*) filter (where outcome in ('completed', 'cached'))`.as('requests'),
  sql<string>`count(*) filter (where outcome = 'cached')`.as('hits'),
  sql<string>`count(*) filter (where outcome = 'cached' and cache_kind = 'exact')`.as('exact'),
  sql<string>`count(*) filter (where outcome = 'cached' and cache_kind = 'semantic')`.as('semantic'),
  sql<string>`count(*) filter (where outcome = 'cached' and cache_kind = 'coalesced')`.as('coalesced'),
  sql<string>`coalesce(sum(saved_tokens), 0)`.as('tokensSaved'),
  sql<string>`round(coalesce(sum(saved_usd), 0), 6)`.as('savedUsd'),
  sql<string>`coalesce(sum(embedding_tokens), 0)`.as('embeddingTokens'),
  sql<string>`round(coalesce(sum(embedding_usd), 0), 6)`.as('embeddingUsd'),
  sql<string>`round(coalesce(sum(saved_usd - embedding_usd), 0), 6)`.as('netSavedUsd'),
];

function toFigures(r: Record<string, unknown>): CacheFigures {
  const requests = Number(r.requests);
  const hits = Number(r.hits);
  return {
    requests,
    hits,
    hitsByKind: { exact: Number(r.exact), semantic: Number(r.semantic), coalesced: Number(r.coalesced) },
    hitRate: requests > 0 ? Math.round((hits / requests) * 1e6) / 1e6 : null,
    tokensSaved: Number(r.tokensSaved),
    savedUsd: Number(r.savedUsd),
    embeddingTokens: Number(r.embeddingTokens),
    embeddingUsd: Number(r.embeddingUsd),
    netSavedUsd: Number(r.netSavedUsd),
  };
}

/**
 * `GET /v1/cache`: what the cache saved of the requests received in [from, to), grouped by
 * tenant, model (the answering one), day (UTC) and kind (`exact`, `semantic`, `coalesced`, or
 * `miss`), net of what the semantic cache's embedding calls cost. Requests that were answered
 * count, and so do unanswered ones that paid for an embedding (their spend is part of the net;
 * their model is null). Rows are ordered by the group columns (byte order).
 *
 * @example
 * await cacheReport(db, { from, to, groupBy: ['tenant', 'kind'] })
 * // { rows: [{ tenant: 'dev', kind: 'semantic', requests: 3, hits: 3, savedUsd: 0.0012, embeddingUsd: 0.000001, netSavedUsd: 0.001199, ... }], totals }
 */
export async function cacheReport(db: Db, q: CacheQuery): Promise<CacheReport> {
  let base = db
    .selectFrom('requests')
    .where('received_at', '>=', q.from)
    .where('received_at', '<', q.to)
    .where((eb) => eb.or([eb('outcome', 'in', ['completed', 'cached']), eb('embedding_usd', '>', '0')]));
  if (q.tenant) base = base.where('tenant', '=', q.tenant);
  return groupedReport(base, q, dimensionSql, figures, toFigures);
}
