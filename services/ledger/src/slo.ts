import { sql, type RawBuilder } from 'kysely';
import { STATIC_FALLBACK } from '@sluice/contracts';
import type { Db } from './db.js';
import type { SloDimension, SloQuery } from './params.js';

/** Counts by outcome and latency percentiles of one group, as read from the database. */
export interface SloCounts {
  requests: number;
  /** Answered by an upstream (not the static answer). */
  completed: number;
  /** Answered with the router's static answer at degrade level 3 (`static-fallback`). */
  degraded: number;
  cached: number;
  failed: number;
  throttled: number;
  shed: number;
  rejected: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

/** Service levels of one group. A rate whose denominator is 0 is null (no data, not 0% or 100%). */
export interface SloFigures {
  requests: number;
  /** Requests that got a real answer: completed upstream or from the cache (not the static answer). */
  answered: number;
  /** Of answered requests, milliseconds from ingress to the terminal event. */
  latencyMs: { p50: number | null; p95: number | null; p99: number | null };
  /** failed / (completed + degraded + failed): what the gateway could not serve once it tried. */
  errorRate: number | null;
  /** degraded / (completed + degraded + failed): what it answered with the static answer instead of a model. */
  degradedRate: number | null;
  /** completed / (completed + degraded + failed) = 1 − errorRate − degradedRate: a static answer is not a success. */
  availability: number | null;
  /**
   * How fast the window spends the error budget of `objective` (availability 99.9%): (1 − availability) /
   * (1 − objective). 1 spends exactly the budget over the SLO period; 14.4 spends a 30-day budget's 2% in
   * an hour (the SRE workbook's page threshold). Null without data.
   */
  errorBudget: { objective: number; burnRate: number | null };
  /** cached / (completed + cached): answers from the cache of every kind (exact, semantic, coalesced). */
  cacheHitRate: number | null;
  throttleRate: number | null;
  shedRate: number | null;
  outcomes: { completed: number; degraded: number; cached: number; failed: number; throttled: number; shed: number; rejected: number };
}

export interface SloReport {
  window: string;
  from: string;
  to: string;
  groupBy: SloDimension | null;
  rows: Array<Partial<Record<SloDimension, string | null>> & SloFigures>;
  totals: SloFigures;
}

const ratio = (n: number, d: number) => (d > 0 ? Math.round((n / d) * 1e6) / 1e6 : null);
const ms = (v: number | null) => (v === null ? null : Math.round(v * 100) / 100);

/** The availability objective the error budget is counted against (the alert rules' SLO target). */
export const SLO_OBJECTIVE = 0.999;

/** Turns counts into rates. Pure. */
export function sloFigures(c: SloCounts): SloFigures {
  const tried = c.completed + c.degraded + c.failed;
  const availability = ratio(c.completed, tried);
  return {
    requests: c.requests,
    answered: c.completed + c.cached,
    latencyMs: { p50: ms(c.p50), p95: ms(c.p95), p99: ms(c.p99) },
    errorRate: ratio(c.failed, tried),
    degradedRate: ratio(c.degraded, tried),
    availability,
    errorBudget: { objective: SLO_OBJECTIVE, burnRate: availability === null ? null : Math.round(((1 - availability) / (1 - SLO_OBJECTIVE)) * 1e4) / 1e4 },
    cacheHitRate: ratio(c.cached, c.completed + c.cached),
    throttleRate: ratio(c.throttled, c.requests),
    shedRate: ratio(c.shed, c.requests),
    outcomes: {
      completed: c.completed,
      degraded: c.degraded,
      cached: c.cached,
      failed: c.failed,
      throttled: c.throttled,
      shed: c.shed,
      rejected: c.rejected,
    },
  };
}

const dimensionSql: Record<SloDimension, RawBuilder<string | null>> = { model: sql`model`, tenant: sql`tenant` };
// the router's static answer (degrade level 3) is a completed row whose deployment is `static-fallback`
const staticAnswer = sql`deployment = ${sql.lit(STATIC_FALLBACK)}`;
const upstreamAnswer = sql`outcome = 'completed' and deployment is distinct from ${sql.lit(STATIC_FALLBACK)}`;
const answered = sql`(${upstreamAnswer}) or outcome = 'cached'`;
const percentile = (p: number) => sql<number | null>`percentile_cont(${sql.lit(p)}) within group (order by latency_ms) filter (where ${answered})`;
const countOf = (outcome: string) => sql<string>`count(*) filter (where outcome = ${sql.lit(outcome)})`;
const measures = [
  sql<string>`count(*)`.as('requests'),
  sql<string>`count(*) filter (where ${upstreamAnswer})`.as('completed'),
  sql<string>`count(*) filter (where outcome = 'completed' and ${staticAnswer})`.as('degraded'),
  countOf('cached').as('cached'),
  countOf('failed').as('failed'),
  countOf('throttled').as('throttled'),
  countOf('shed').as('shed'),
  countOf('rejected').as('rejected'),
  percentile(0.5).as('p50'),
  percentile(0.95).as('p95'),
  percentile(0.99).as('p99'),
];

function toCounts(r: Record<string, unknown>): SloCounts {
  const n = (k: string) => Number(r[k] ?? 0);
  const p = (k: string) => (r[k] === null || r[k] === undefined ? null : Number(r[k]));
  return {
    requests: n('requests'),
    completed: n('completed'),
    degraded: n('degraded'),
    cached: n('cached'),
    failed: n('failed'),
    throttled: n('throttled'),
    shed: n('shed'),
    rejected: n('rejected'),
    p50: p('p50'),
    p95: p('p95'),
    p99: p('p99'),
  };
}

/**
 * Service levels of the requests received in the window, overall and per group.
 *
 * @example
 * await slo(db, { window: '1h', from, to, groupBy: 'model' })
 */
export async function slo(db: Db, q: SloQuery): Promise<SloReport> {
  let base = db.selectFrom('requests').where('received_at', '>=', q.from).where('received_at', '<', q.to);
  if (q.tenant) base = base.where('tenant', '=', q.tenant);
  const totals = await base.select(measures).executeTakeFirstOrThrow();
  const dim = q.groupBy;
  const rows = dim
    ? (
        await base
          .select([dimensionSql[dim].as(dim), ...measures])
          .groupBy(dimensionSql[dim])
          .orderBy(sql`${dimensionSql[dim]} collate "C" nulls last`)
          .execute()
      ).map((r) => {
        const row = r as Record<string, unknown>;
        return { [dim]: (row[dim] as string | null) ?? null, ...sloFigures(toCounts(row)) };
      })
    : [sloFigures(toCounts(totals))];
  return { window: q.window, from: q.from.toISOString(), to: q.to.toISOString(), groupBy: dim ?? null, rows, totals: sloFigures(toCounts(totals)) };
}
