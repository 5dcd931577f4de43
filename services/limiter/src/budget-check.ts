import { NANOS_PER_USD, type BudgetRef } from '@sluice/contracts';

/**
 * The budget side of admission, pure: whether a request's estimated cost fits each of its
 * budgets, given what the ledger has counted and what limiter replicas have reserved.
 */

/** One budget window's counter as the limiter knows it (nano-USD); absent values are 0. */
export interface CounterState {
  /** The ledger's exact spend of the window (`BudgetSpend.spentNanos`). */
  spentNanos: number;
  /** Reservations of requests that ended, which `spentNanos` already counts (`BudgetSpend.settledNanos`). */
  settledNanos: number;
  /** Every reservation limiter replicas made in the window (the `admitted` counter). */
  admittedNanos: number;
}

/** A budget's counter for its window: `<budgetKey>.<windowId>`, as `Reservation.counters` names it. */
export const counterOf = (ref: Pick<BudgetRef, 'budgetKey' | 'windowId'>) => `${ref.budgetKey}.${ref.windowId}`;

/** Nano-USD reserved by requests admitted and not yet settled (never below zero). */
export function inFlightNanos(state: CounterState): number {
  return Math.max(0, state.admittedNanos - state.settledNanos);
}

/**
 * The reservation rule: a request costing `nanos` fits when spent + in flight + nanos ≤ limit.
 * Spent and settled move together (the ledger writes both at once), so a stale read of them
 * counts a finished request by its reservation instead of its cost: it errs towards refusing.
 */
export function fits(state: CounterState, nanos: number, limitNanos: number): boolean {
  return state.spentNanos + inFlightNanos(state) + nanos <= limitNanos;
}

export type BudgetVerdict =
  /** Admit, reserving `estimateNanos` on every budget; `downgrade` is the spent budget that sends it to the cheapest tier. */
  | { kind: 'within'; estimateNanos: number; downgrade?: BudgetRef }
  /** Refuse: `budget` is spent (of the refusing budgets, the one that resets last), until `resetsAt`. */
  | { kind: 'spent'; budget: BudgetRef; state: CounterState; estimateNanos: number; retryAfterMs: number; message: string };

/**
 * Decides a request on its budgets. A spent `downgrade` budget does not refuse: the request is
 * priced again at the cheapest tier (`estimate(true)`) and the `refuse` budgets are checked with
 * that. A spent `refuse` budget refuses; with several, the one that resets last is named, since
 * asking before it resets cannot succeed.
 *
 * @example
 * const v = checkBudgets(refs, (ref) => states.get(counterOf(ref))!, (down) => estimateCostNanos(config, request, down)!, Date.now());
 * if (v.kind === 'spent') reply429(v.message, v.retryAfterMs);
 */
export function checkBudgets(
  refs: readonly BudgetRef[],
  stateOf: (ref: BudgetRef) => CounterState,
  estimate: (downgraded: boolean) => number,
  now: number,
): BudgetVerdict {
  const full = estimate(false);
  const downgrade = refs.find((ref) => ref.action === 'downgrade' && !fits(stateOf(ref), full, ref.limitNanos));
  const estimateNanos = downgrade ? estimate(true) : full;
  let spent: BudgetRef | undefined;
  for (const ref of refs) {
    if (ref.action !== 'refuse' || fits(stateOf(ref), estimateNanos, ref.limitNanos)) continue;
    if (!spent || ref.resetsAt > spent.resetsAt) spent = ref;
  }
  if (!spent) return downgrade ? { kind: 'within', estimateNanos, downgrade } : { kind: 'within', estimateNanos };
  const state = stateOf(spent);
  return { kind: 'spent', budget: spent, state, estimateNanos, retryAfterMs: Math.max(0, spent.resetsAt - now), message: spentMessage(spent, state) };
}

/** The client's message for a spent budget: which budget, its window and limit, what is used, and when it resets. */
export function spentMessage(ref: BudgetRef, state: CounterState): string {
  const whose = ref.scope === 'tenant' ? '' : ` (per ${ref.scope})`;
  const used = `${usd(state.spentNanos)} spent and ${usd(inFlightNanos(state))} reserved by requests in flight`;
  return `Budget ${ref.budget}${whose} of ${usd(ref.limitNanos)} for the ${ref.window} window ${ref.windowId} is used up (${used}); it resets at ${new Date(ref.resetsAt).toISOString()}.`;
}

/** Nano-USD as dollars with enough digits to see a small budget move ($0.0100, $12.50). */
function usd(nanos: number): string {
  const dollars = nanos / NANOS_PER_USD;
  return `$${dollars >= 1 ? dollars.toFixed(2) : dollars.toFixed(4)}`;
}
