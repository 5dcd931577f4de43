import { NANOS_PER_USD } from '@sluice/contracts';
import type { Db } from './db.js';
import { BadParam } from './params.js';

/** `GET /v1/budgets` parameters: one tenant's (a read key's own), and past windows too with `past=true`. */
export interface BudgetsQuery {
  tenant?: string;
  past: boolean;
}

export function parseBudgetsQuery(q: Record<string, unknown>): BudgetsQuery {
  const { tenant, past } = q;
  if (tenant !== undefined && (typeof tenant !== 'string' || tenant === '')) throw new BadParam('tenant', 'tenant must be given once and not be empty');
  if (past !== undefined && past !== 'true' && past !== 'false') throw new BadParam('past', 'past takes true or false');
  return { past: past === 'true', ...(typeof tenant === 'string' ? { tenant } : {}) };
}

/** One budget window as the ledger counted it. */
export interface BudgetWindowReport {
  tenant: string;
  /** The budget's id (`key:<keyId>` for a virtual key's own); null when the live config no longer had it at the last admission. */
  budget: string | null;
  scope: string | null;
  /** The counter: budget plus the hashed user, feature or key it counts for. */
  budgetKey: string;
  window: 'daily' | 'monthly' | null;
  windowId: string;
  /** ISO 8601; null when the budget is unknown. */
  resetsAt: string | null;
  action: 'refuse' | 'downgrade' | null;
  limitUsd: number | null;
  /** Exact decimal USD of the requests that ended. */
  spentUsd: string;
  /** spent / limit (1 = spent), to 4 decimals. */
  spentFraction: number | null;
  /** Estimated cost reserved by requests admitted and not ended yet (USD, from nano-USD). */
  inFlightUsd: number;
  requests: number;
  /** Alert thresholds already crossed in the window (each sent once). */
  alerted: number[];
}

/**
 * Budgets by window, from the ledger's exact projection (`budget_counters`), with what requests in
 * flight have reserved (`budget_reservations` not yet settled). Windows that have not reset yet,
 * unless `past`; newest window first. Two queries; the open reservations are few (requests in flight).
 *
 * @example
 * await budgetsReport(db, { tenant: 'dev', past: false }, Date.now()) // { budgets: [{ budget: 'monthly', spentUsd: '1.25', ... }] }
 */
export async function budgetsReport(db: Db, query: BudgetsQuery, now: number): Promise<{ budgets: BudgetWindowReport[] }> {
  let counters = db.selectFrom('budget_counters').selectAll();
  let open = db.selectFrom('budget_reservations').select(['counters', 'reserved_nanos']).where('settled_seq', 'is', null);
  if (query.tenant !== undefined) {
    counters = counters.where('tenant', '=', query.tenant);
    open = open.where('tenant', '=', query.tenant);
  }
  const [rows, reservations] = await Promise.all([counters.orderBy('window_id', 'desc').orderBy('counter').execute(), open.execute()]);
  const inFlight = new Map<string, number>();
  for (const r of reservations) {
    const list = typeof r.counters === 'string' ? (JSON.parse(r.counters) as string[]) : r.counters;
    for (const c of list) inFlight.set(c, (inFlight.get(c) ?? 0) + Number(r.reserved_nanos));
  }
  const budgets = rows
    .filter((r) => query.past || !r.budget || r.budget.resetsAt > now)
    .map((r): BudgetWindowReport => {
      const b = r.budget;
      const alerted = typeof r.alerted === 'string' ? (JSON.parse(r.alerted) as number[]) : r.alerted;
      return {
        tenant: r.tenant,
        budget: b?.budget ?? null,
        scope: b?.scope ?? null,
        budgetKey: r.budget_key,
        window: b?.window ?? null,
        windowId: r.window_id,
        resetsAt: b ? new Date(b.resetsAt).toISOString() : null,
        action: b?.action ?? null,
        limitUsd: b?.limitUsd ?? null,
        spentUsd: String(r.spent_usd),
        spentFraction: b ? Math.round((Number(r.spent_nanos) / b.limitNanos) * 10_000) / 10_000 : null,
        inFlightUsd: (inFlight.get(r.counter) ?? 0) / NANOS_PER_USD,
        requests: Number(r.requests),
        alerted: alerted.map((t) => t / 1000),
      };
    });
  return { budgets };
}
