import { sql, type RawBuilder } from 'kysely';
import type { Db } from './db.js';
import { groupedReport, type GroupedReport } from './grouped.js';
import type { CostDimension, CostsQuery } from './params.js';

/** One group's (or the total's) spend. Money is USD as a number rounded to 1e-6 (sums are exact in the database). */
interface CostFigures {
  requests: number;
  completed: number;
  cacheHits: number;
  inputTokens: number;
  outputTokens: number;
  /** What the tenant is billed: upstream answers plus the semantic cache's embedding calls. */
  costUsd: number;
  /** The embedding calls' part of costUsd. */
  embeddingUsd: number;
  savedUsd: number;
  /**
   * Requests billed at the live config's price when projected, because their events carry no
   * recorded price (recorded before prices were: `requests.price_source = 'config'`). Only these
   * change when the ledger is rebuilt after a price change.
   */
  configPriced: number;
}

export type CostsReport = GroupedReport<CostDimension, CostFigures>;

/** The SQL of each group column of the requests table (cache-report.ts groups by the same). */
export const dimensionSql: Record<CostDimension, RawBuilder<string | null>> = {
  tenant: sql`tenant`,
  user: sql`user_id`,
  model: sql`model`,
  feature: sql`feature`,
  day: sql`to_char(received_at at time zone 'UTC', 'YYYY-MM-DD')`,
};

const figures = [
  sql<string>`count(*)`.as('requests'),
  sql<string>`count(*) filter (where outcome = 'completed')`.as('completed'),
  sql<string>`count(*) filter (where cache_hit)`.as('cacheHits'),
  sql<string>`coalesce(sum(input_tokens), 0)`.as('inputTokens'),
  sql<string>`coalesce(sum(output_tokens), 0)`.as('outputTokens'),
  sql<string>`round(coalesce(sum(cost_usd + embedding_usd), 0), 6)`.as('costUsd'),
  sql<string>`round(coalesce(sum(embedding_usd), 0), 6)`.as('embeddingUsd'),
  sql<string>`round(coalesce(sum(saved_usd), 0), 6)`.as('savedUsd'),
  sql<string>`count(*) filter (where price_source = 'config')`.as('configPriced'),
];

function toFigures(r: Record<string, unknown>): CostFigures {
  return {
    requests: Number(r.requests),
    completed: Number(r.completed),
    cacheHits: Number(r.cacheHits),
    inputTokens: Number(r.inputTokens),
    outputTokens: Number(r.outputTokens),
    costUsd: Number(r.costUsd),
    embeddingUsd: Number(r.embeddingUsd),
    savedUsd: Number(r.savedUsd),
    configPriced: Number(r.configPriced),
  };
}

/**
 * Spend of the requests received in [from, to), grouped; rows are ordered by the group columns
 * (byte order, so the answer does not depend on the database's locale).
 *
 * @example
 * await costs(db, { from, to, groupBy: ['tenant', 'model'] }) // { rows: [{ tenant: 'acme', model: 'gpt-4o-mini', costUsd: 0.00045, ... }], totals }
 */
export async function costs(db: Db, q: CostsQuery): Promise<CostsReport> {
  let base = db.selectFrom('requests').where('received_at', '>=', q.from).where('received_at', '<', q.to);
  if (q.tenant) base = base.where('tenant', '=', q.tenant);
  return groupedReport(base, q, dimensionSql, figures, toFigures);
}
