import { createHash } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import type { SluiceConfig } from './config.js';
import type { BudgetAction, BudgetLimit, BudgetWindow, RequestKey } from './spend.js';

/**
 * The budgets a request counts against, their windows and their counters in `sluice_budgets`.
 * Shared by the limiter (which reserves) and the ledger (which settles and alerts), so both name
 * the same counters.
 *
 * Money in the budget counters is integer nano-USD (1e-9 USD): exact for sums below 9e6 USD and
 * fine enough for one token of the cheapest model. The ledger's own columns stay exact decimals.
 */

/** Nano-USD per USD. */
export const NANOS_PER_USD = 1_000_000_000;

/** One budget window: its id (`2026-11-30`, `2026-11`), when it began and when it resets (epoch ms). */
export interface BudgetPeriod {
  windowId: string;
  startsAt: number;
  resetsAt: number;
}

/** A budget that applies to a request, with the counter it is kept in for the current window. */
export interface BudgetRef extends BudgetPeriod {
  /** The budget's id in config, or `key:<keyId>` for a virtual key's own budget. */
  budget: string;
  scope: 'tenant' | 'user' | 'feature' | 'key';
  /** The counter: `<tenant>.<budget>` plus a hash of the user, feature or key for a per-subject budget. */
  budgetKey: string;
  window: BudgetWindow;
  limitUsd: number;
  limitNanos: number;
  action: BudgetAction;
  thresholds: number[];
}

/**
 * The calendar window `now` falls in, in `timeZone` (default UTC). Days and months begin at local
 * midnight; across a DST change a day is 23 or 25 hours.
 *
 * @example
 * budgetPeriod('monthly', Date.UTC(2026, 10, 30, 12)) // { windowId: '2026-11', startsAt: Date.UTC(2026,10,1), resetsAt: Date.UTC(2026,11,1) }
 */
export function budgetPeriod(window: BudgetWindow, now: number, timeZone = 'UTC'): BudgetPeriod {
  const { year, month, day } = localDate(now, timeZone);
  if (window === 'monthly') {
    const startsAt = zonedMidnight(year, month, 1, timeZone);
    const next = month === 12 ? [year + 1, 1] : [year, month + 1];
    return { windowId: `${year}-${pad(month)}`, startsAt, resetsAt: zonedMidnight(next[0]!, next[1]!, 1, timeZone) };
  }
  const startsAt = zonedMidnight(year, month, day, timeZone);
  const tomorrow = new Date(Date.UTC(year, month - 1, day + 1));
  return {
    windowId: `${year}-${pad(month)}-${pad(day)}`,
    startsAt,
    resetsAt: zonedMidnight(tomorrow.getUTCFullYear(), tomorrow.getUTCMonth() + 1, tomorrow.getUTCDate(), timeZone),
  };
}

const pad = (n: number) => String(n).padStart(2, '0');

/** Whether `zone` is an IANA time zone this runtime knows (what `budgetPeriod` accepts). */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const formats = new Map<string, Intl.DateTimeFormat>();
function localDate(at: number, timeZone: string): { year: number; month: number; day: number; hour: number; minute: number; second: number } {
  let f = formats.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formats.set(timeZone, f);
  }
  const parts = Object.fromEntries(f.formatToParts(at).map((p) => [p.type, p.value]));
  return { year: +parts.year!, month: +parts.month!, day: +parts.day!, hour: +parts.hour!, minute: +parts.minute!, second: +parts.second! };
}

/** Epoch ms of local midnight on a date in `timeZone` (UTC offset found by two corrections). */
function zonedMidnight(year: number, month: number, day: number, timeZone: string): number {
  const target = Date.UTC(year, month - 1, day);
  let guess = target;
  for (let i = 0; i < 2; i++) {
    const l = localDate(guess, timeZone);
    const shown = Date.UTC(l.year, l.month - 1, l.day, l.hour, l.minute, l.second);
    guess += target - shown;
  }
  return guess;
}

/** The first 16 hex digits of a SHA-256: a user or feature name made safe for a KV key. */
function subjectHash(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex').slice(0, 16);
}

/** What a request is known by for budgets. */
export interface BudgetSubject {
  tenant: string;
  user?: string;
  feature?: string;
  key?: RequestKey;
}

/**
 * The budgets a request counts against at `now`: the tenant's configured budgets whose scope it
 * has (a per-user budget needs a user, ...) and whose `match` it meets, and its virtual key's own.
 *
 * @example
 * budgetsFor(config, { tenant: 'dev', user: 'alice' }, Date.now()).map((b) => b.budgetKey)
 */
export function budgetsFor(config: SluiceConfig, subject: BudgetSubject, now: number): BudgetRef[] {
  const tenant = config.tenants.find((t) => t.id === subject.tenant);
  const refs: BudgetRef[] = [];
  const ref = (budget: string, scope: BudgetRef['scope'], budgetKey: string, limit: BudgetLimit): BudgetRef => ({
    budget,
    scope,
    budgetKey,
    window: limit.window,
    limitUsd: limit.limitUsd,
    limitNanos: Math.round(limit.limitUsd * NANOS_PER_USD),
    action: limit.action ?? 'refuse',
    thresholds: [...(limit.thresholds ?? config.alerts.thresholds)].sort((a, b) => a - b),
    ...budgetPeriod(limit.window, now, limit.timeZone),
  });
  for (const b of tenant?.budgets ?? []) {
    const base = `${subject.tenant}.${b.id}`;
    if (b.scope === 'tenant') {
      refs.push(ref(b.id, 'tenant', base, b));
      continue;
    }
    const value = b.scope === 'user' ? subject.user : b.scope === 'feature' ? subject.feature : subject.key?.id;
    if (value === undefined || (b.match !== undefined && b.match !== value)) continue;
    // one budget for the matched subject, or one per subject of the scope
    refs.push(ref(b.id, b.scope, b.match !== undefined ? base : `${base}.${subjectHash(value)}`, b));
  }
  if (subject.key?.budget) refs.push(ref(`key:${subject.key.id}`, 'key', `${subject.tenant}.key-${subject.key.id}`, subject.key.budget));
  return refs;
}

/** Keys in the `sluice_budgets` bucket. */
export const BudgetKeys = {
  /** The ledger's exact spend of a budget window (`BudgetSpend`). */
  spend: (budgetKey: string, windowId: string) => `spend.${budgetKey}.${windowId}`,
  spendAll: 'spend.>',
  /** What limiter replicas admitted against a budget window, nano-USD (a compare-and-set counter). */
  admitted: (budgetKey: string, windowId: string) => `admitted.${budgetKey}.${windowId}`,
  /** An alert already emitted for a threshold of a budget window: never emitted again. */
  alert: (budgetKey: string, windowId: string, threshold: number) => `alert.${budgetKey}.${windowId}.${Math.round(threshold * 1000)}`,
  /** A webhook acknowledged an alert (`alertId` is its `alert` key): never POSTed it again. */
  delivered: (alertId: string, webhook: string) => `delivered.${alertId}.${webhook}`,
} as const;

/**
 * A budget window's spend as the ledger projected it, written after each projected batch.
 * `settledNanos` is the sum of the reservations of the requests that ended (what the limiters
 * admitted and the ledger has since counted): in flight = admitted − settled.
 */
export const BudgetSpend = Type.Object({
  spentNanos: Type.Integer({ minimum: 0 }),
  settledNanos: Type.Integer({ minimum: 0 }),
  /** Exact decimal USD. */
  spentUsd: Type.String(),
  /** The stream sequence the ledger had projected when it wrote this. */
  seq: Type.Integer({ minimum: 0 }),
});
export type BudgetSpend = Static<typeof BudgetSpend>;

/** What `chat.admitted` says of the budgets the limiter reserved against. */
export const Reservation = Type.Object({
  /** `BudgetKeys.spend(budgetKey, windowId)` minus the `spend.` prefix: `<budgetKey>.<windowId>`, one per budget. */
  counters: Type.Array(Type.String()),
  /** The request's estimated cost, reserved on each counter until the ledger settles it. */
  reservedNanos: Type.Integer({ minimum: 0 }),
});
export type Reservation = Static<typeof Reservation>;
