import { sql } from 'kysely';
import type { Db } from './db.js';
import { BadParam, parseCostsQuery } from './params.js';

/** `/v1/variants` parameters: one canary or all, from/to as `/v1/costs`'s (default the last 24 hours), optionally one tenant's. */
interface VariantsQuery {
  from: Date;
  to: Date;
  canary?: string;
  tenant?: string;
}

/** One variant's figures over the window. Latency is ms from ingress to the answer, of completed requests. */
interface VariantFigures {
  canary: string;
  variant: string;
  requests: number;
  completed: number;
  failed: number;
  /** failed / (completed + failed); null before any request ended either way. */
  errorRate: number | null;
  latencyMs: { p50: number | null; p95: number | null; p99: number | null };
  /** USD billed for the variant's requests, rounded to 1e-6. */
  costUsd: number;
}

interface VariantsReport {
  from: string;
  to: string;
  rows: VariantFigures[];
}

/** Parses `/v1/variants`'s query; throws BadParam naming a wrong parameter. */
export function parseVariantsQuery(q: Record<string, unknown>, now: number): VariantsQuery {
  const { from, to, tenant } = parseCostsQuery({ from: q.from, to: q.to, tenant: q.tenant }, now);
  const canary = q.canary;
  if (canary !== undefined && (typeof canary !== 'string' || canary === '')) throw new BadParam('canary', 'canary must be given once, not empty');
  return { from, to, ...(canary !== undefined ? { canary } : {}), ...(tenant !== undefined ? { tenant } : {}) };
}

const percentile = (p: number) => sql<number | null>`percentile_cont(${sql.lit(p)}) within group (order by latency_ms) filter (where outcome = 'completed')`;
const ms = (v: unknown) => (v === null || v === undefined ? null : Math.round(Number(v) * 100) / 100);

/**
 * Per canary and variant, the requests received in [from, to) that took it: counts, error rate,
 * latency percentiles and cost; rows ordered by canary then variant (byte order). Requests no
 * canary matched are not in it.
 *
 * @example
 * await variantsReport(db, { from, to, canary: 'new-model' })
 * // { rows: [{ canary: 'new-model', variant: 'a', requests: 80, errorRate: 0, latencyMs: { p50: 120, ... }, costUsd: 0.0012 }, ...] }
 */
export async function variantsReport(db: Db, q: VariantsQuery): Promise<VariantsReport> {
  let base = db.selectFrom('requests').where('canary', 'is not', null).where('received_at', '>=', q.from).where('received_at', '<', q.to);
  if (q.canary !== undefined) base = base.where('canary', '=', q.canary);
  if (q.tenant !== undefined) base = base.where('tenant', '=', q.tenant);
  const rows = await base
    .select([
      'canary',
      'variant',
      sql<string>`count(*)`.as('requests'),
      sql<string>`count(*) filter (where outcome = 'completed')`.as('completed'),
      sql<string>`count(*) filter (where outcome = 'failed')`.as('failed'),
      percentile(0.5).as('p50'),
      percentile(0.95).as('p95'),
      percentile(0.99).as('p99'),
      sql<string>`round(coalesce(sum(cost_usd + embedding_usd), 0), 6)`.as('costUsd'),
    ])
    .groupBy(['canary', 'variant'])
    .orderBy(sql`canary collate "C"`)
    .orderBy(sql`variant collate "C"`)
    .execute();
  return {
    from: q.from.toISOString(),
    to: q.to.toISOString(),
    rows: rows.map((r) => {
      const completed = Number(r.completed);
      const failed = Number(r.failed);
      return {
        canary: r.canary!,
        variant: r.variant ?? '',
        requests: Number(r.requests),
        completed,
        failed,
        errorRate: completed + failed > 0 ? Math.round((failed / (completed + failed)) * 1e6) / 1e6 : null,
        latencyMs: { p50: ms(r.p50), p95: ms(r.p95), p99: ms(r.p99) },
        costUsd: Number(r.costUsd),
      };
    }),
  };
}
