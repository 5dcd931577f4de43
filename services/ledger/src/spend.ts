import {
  BudgetKeys,
  makeEvent,
  type AnyEvent,
  type BudgetRef,
  type BudgetSpend,
  type BudgetSubject,
  type EventType,
  type SluiceEvent,
} from '@sluice/contracts';
import type { CounterBudget } from './budgets.table.js';
import { formatUsd, nanosCeil, usdUnits } from './money.js';

// Budget spend, decided without I/O: what a batch's events reserve and settle, each budget
// window's counter after them, and the alert thresholds they cross. spend-writes.ts reads the
// counters before and writes them after, in the batch's transaction.

/**
 * The events that end a request. The first one seen settles its reservation: a request ends
 * once, and a second terminal event (a race the pipeline resolves elsewhere) is not charged twice.
 */
const ENDINGS: ReadonlySet<EventType> = new Set<EventType>([
  'chat.completed',
  'chat.cancelled',
  'chat.failed',
  'chat.shed',
  'cache.hit',
  'cache.coalesced',
  'chat.throttled',
  'chat.rejected',
]);

/** The budgets that apply to a request at a time: `budgetsFor` over the live config. */
export type BudgetsOf = (subject: BudgetSubject, at: number) => BudgetRef[];

/** A counter: `<budgetKey>.<windowId>`, as chat.admitted names it. */
export interface CounterId {
  counter: string;
  budgetKey: string;
  windowId: string;
  tenant: string;
}

/** A request admitted against budgets (chat.admitted with `data.budgets`). */
export interface Reserved {
  requestId: string;
  tenant: string;
  seq: number;
  reservedNanos: number;
  counters: Array<CounterId & { budget?: CounterBudget }>;
}

/**
 * A request's terminal event, with what it cost (exact decimal USD; '0' when nothing was served).
 * Settling adds what the request's embedding calls cost (spend-writes.ts), so a settled cost is
 * the request's whole spend.
 */
export interface Ended {
  requestId: string;
  seq: number;
  at: number;
  costUsd: string;
}

/** A reservation settled by its request's end. */
export interface Settled extends Ended {
  counters: string[];
  reservedNanos: number;
}

/** One budget window's counter, as stored (money as bigints: 1e-18 USD and nano-USD). */
export interface Counter extends CounterId {
  budget: CounterBudget | null;
  spentUnits: bigint;
  spentNanos: bigint;
  settledNanos: bigint;
  requests: number;
  /** Thresholds already alerted, in thousandths. */
  alerted: number[];
  updatedSeq: number;
}

/** A threshold reached for the first time in a window. */
export interface Crossing {
  alertId: string;
  event: SluiceEvent<'budget.threshold_crossed'>;
  counter: string;
  threshold: number;
  seq: number;
}

/**
 * Splits `<tenant>.<budget>[.<subject>].<windowId>`: the last dot starts the window (`2026-11-30`,
 * `2026-11`) and the first ends the tenant (neither tenant ids nor window ids have dots).
 */
export function counterId(counter: string): CounterId {
  const first = counter.indexOf('.');
  const last = counter.lastIndexOf('.');
  if (first <= 0 || last === first || last === counter.length - 1) throw new Error(`budget counter ${counter} is not <tenant>.<budget>.<windowId>`);
  return { counter, budgetKey: counter.slice(0, last), windowId: counter.slice(last + 1), tenant: counter.slice(0, first) };
}

/**
 * What one event does to budgets: a reservation, an ending, or nothing. `costUsd` is the
 * projection's cost of the request (undefined: none). A reserved counter the live config no
 * longer names (a budget removed since admission) keeps no budget: its spend is counted, without
 * alerts.
 */
export function budgetChange(seq: number, e: AnyEvent, costUsd: string | undefined, budgetsOf?: BudgetsOf): { reserved?: Reserved; ended?: Ended } {
  if (e.type === 'chat.admitted') {
    const r = e.data.budgets;
    if (!r || r.counters.length === 0) return {};
    const req = e.data.ctx.request;
    const subject: BudgetSubject = {
      tenant: e.tenant,
      ...(req.user !== undefined ? { user: req.user } : {}),
      ...(req.feature !== undefined ? { feature: req.feature } : {}),
      ...(e.data.ctx.key ? { key: e.data.ctx.key } : {}),
    };
    const refs = budgetsOf?.(subject, e.at) ?? [];
    const counters = r.counters.map((c) => {
      const id = counterId(c);
      const ref = refs.find((b) => b.budgetKey === id.budgetKey && b.windowId === id.windowId);
      return ref ? { ...id, budget: counterBudget(ref) } : id;
    });
    return { reserved: { requestId: e.requestId, tenant: e.tenant, seq, reservedNanos: r.reservedNanos, counters } };
  }
  if (e.requestId && ENDINGS.has(e.type)) return { ended: { requestId: e.requestId, seq, at: e.at, costUsd: costUsd ?? '0' } };
  return {};
}

function counterBudget(b: BudgetRef): CounterBudget {
  return {
    budget: b.budget,
    scope: b.scope,
    window: b.window,
    limitUsd: b.limitUsd,
    limitNanos: b.limitNanos,
    thresholds: b.thresholds,
    resetsAt: b.resetsAt,
    action: b.action,
  };
}

/** The first ending of each request, in sequence order. */
export function firstEndings(endings: Ended[]): Ended[] {
  const seen = new Map<string, Ended>();
  for (const e of [...endings].sort((a, b) => a.seq - b.seq)) if (!seen.has(e.requestId)) seen.set(e.requestId, e);
  return [...seen.values()];
}

/** A counter with nothing counted yet. */
export function emptyCounter(id: CounterId, seq: number): Counter {
  return { ...id, budget: null, spentUnits: 0n, spentNanos: 0n, settledNanos: 0n, requests: 0, alerted: [], updatedSeq: seq };
}

/**
 * Folds a batch into its counters: each reservation names its counters' budgets (the latest
 * admission's, so a limit changed in config applies from the next request, and a budget removed
 * from config stops alerting), and each settled
 * request adds its cost (exact, and in nano-USD rounded up) and its reservation, in sequence
 * order. After each, every threshold the window's spend has reached and not yet alerted is a
 * crossing, stamped with the settling event's sequence and time, so a replay decides the same
 * alerts with the same ids and contents. `before` holds the counters as stored (missing ones
 * start empty); the result holds every counter the batch touched.
 */
export function foldSpend(before: ReadonlyMap<string, Counter>, reserved: Reserved[], settled: Settled[]): { counters: Counter[]; crossings: Crossing[] } {
  const out = new Map<string, Counter>();
  const get = (id: CounterId, seq: number): Counter => {
    let c = out.get(id.counter);
    if (!c) {
      const stored = before.get(id.counter);
      c = stored ? { ...stored, alerted: [...stored.alerted] } : emptyCounter(id, seq);
      out.set(id.counter, c);
    }
    return c;
  };
  const crossings: Crossing[] = [];
  const steps = [...reserved.map((r) => ({ seq: r.seq, r })), ...settled.map((s) => ({ seq: s.seq, s }))].sort((a, b) => a.seq - b.seq);
  for (const step of steps) {
    if ('r' in step) {
      for (const id of step.r.counters) {
        const c = get(id, step.seq);
        // the latest admission's config: a budget removed since stops alerting
        c.budget = id.budget ?? null;
        c.updatedSeq = step.seq;
      }
      continue;
    }
    const s = step.s;
    const units = usdUnits(s.costUsd);
    const nanos = nanosCeil(s.costUsd);
    for (const name of s.counters) {
      const c = get(counterId(name), s.seq);
      c.spentUnits += units;
      c.spentNanos += nanos;
      c.settledNanos += BigInt(s.reservedNanos);
      c.requests += 1;
      c.updatedSeq = s.seq;
      crossings.push(...newlyCrossed(c, s));
    }
  }
  return { counters: [...out.values()], crossings };
}

/** Thresholds `c` has reached and not yet alerted, marked alerted. */
function newlyCrossed(c: Counter, at: { seq: number; at: number }): Crossing[] {
  const b = c.budget;
  if (!b) return [];
  const found: Crossing[] = [];
  for (const threshold of b.thresholds) {
    const permille = Math.round(threshold * 1000);
    if (c.alerted.includes(permille) || !reached(c.spentNanos, b.limitNanos, permille)) continue;
    c.alerted.push(permille);
    const alertId = BudgetKeys.alert(c.budgetKey, c.windowId, threshold);
    found.push({ alertId, counter: c.counter, threshold, seq: at.seq, event: alertEvent(alertId, c, b, threshold, at.at) });
  }
  return found;
}

/** spent ≥ permille/1000 × limit, in integers. */
export function reached(spentNanos: bigint, limitNanos: number, permille: number): boolean {
  return spentNanos * 1000n >= BigInt(permille) * BigInt(limitNanos);
}

function alertEvent(alertId: string, c: Counter, b: CounterBudget, threshold: number, at: number): SluiceEvent<'budget.threshold_crossed'> {
  const spentUsd = formatUsd(c.spentUnits);
  return makeEvent(
    'budget.threshold_crossed',
    {
      requestId: alertId,
      tenant: c.tenant,
      service: 'ledger',
      at,
      reason: `${Math.round(threshold * 1000) / 10}% of budget ${b.budget} (${b.limitUsd} USD ${b.window}) spent in ${c.windowId}: ${spentUsd} USD`,
    },
    {
      budget: b.budget,
      budgetKey: c.budgetKey,
      scope: b.scope,
      window: b.window,
      windowId: c.windowId,
      resetsAt: b.resetsAt,
      threshold,
      limitUsd: b.limitUsd,
      spentUsd,
      action: b.action,
    },
  );
}

/** A counter as the limiter reads it from `sluice_budgets` (`BudgetKeys.spend`). */
export function spendValue(c: Counter, seq: number): BudgetSpend {
  return { spentNanos: Number(c.spentNanos), settledNanos: Number(c.settledNanos), spentUsd: formatUsd(c.spentUnits), seq };
}
