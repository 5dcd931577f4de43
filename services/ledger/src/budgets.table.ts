import type { ColumnType } from 'kysely';

/** Integers a driver may return as strings (bigint); written as numbers. */
type Big = ColumnType<number | string, number, number>;
/** Exact decimal USD (`numeric`), read as strings. */
type Money = ColumnType<string, string | undefined, string>;

/**
 * What a budget counter counts against, as `budgetsFor` named it when a request was admitted:
 * absent when the live config no longer had the budget (its spend is still counted, without alerts).
 */
export interface CounterBudget {
  budget: string;
  scope: string;
  window: 'daily' | 'monthly';
  limitUsd: number;
  limitNanos: number;
  thresholds: number[];
  resetsAt: number;
  action: 'refuse' | 'downgrade';
}

/** One request's reservation on its budgets, from its chat.admitted until its terminal event. */
export interface BudgetReservationsTable {
  request_id: string;
  tenant: string;
  /** `<budgetKey>.<windowId>`, one per budget (JSON array). */
  counters: ColumnType<string[], string, never>;
  reserved_nanos: Big;
  admitted_seq: Big;
  /** The terminal event's sequence; null while the request is in flight. */
  settled_seq: ColumnType<number | string | null, number | undefined, number>;
  cost_usd: ColumnType<string | null, string | undefined, string>;
}

/** One budget window's exact spend: `<budgetKey>.<windowId>`. */
export interface BudgetCountersTable {
  counter: string;
  budget_key: string;
  window_id: string;
  tenant: string;
  budget: ColumnType<CounterBudget | null, string | undefined, string>;
  spent_usd: Money;
  /** Sum of each request's cost in nano-USD rounded up. */
  spent_nanos: Big;
  /** Sum of the settled requests' reservations (what the limiters admitted and the ledger counted). */
  settled_nanos: Big;
  requests: ColumnType<number, number | undefined, number>;
  /** Thresholds already crossed in this window, in thousandths (JSON array). */
  alerted: ColumnType<number[], string | undefined, string>;
  updated_seq: Big;
}

/** Crossed thresholds waiting to be published (an outbox: written with the crossing, sent after commit). */
export interface BudgetAlertsTable {
  /** `BudgetKeys.alert(budgetKey, windowId, threshold)`. */
  alert_id: string;
  tenant: string;
  counter: string;
  threshold: number;
  crossed_seq: Big;
  /** The `budget.threshold_crossed` event, as it will be published. */
  event: ColumnType<unknown, string, never>;
  sent_at: ColumnType<Date | null, Date | undefined, Date>;
}
