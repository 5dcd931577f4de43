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
 * The reservation rule: a budget has room while spent + in flight < limit. A request is admitted
 * into the room left, whatever its own estimate, so a budget is refused only once it is spent
 * (spent + reserved reach the limit): its 100 % alert fires, and the overshoot is at most the
 * requests in flight when it filled, the last admitted included (issue 11's bound). Spent and
 * settled move together (the ledger writes both at once), so a stale read of them counts a
 * finished request by its reservation instead of its cost: it errs towards refusing.
 */
export function hasRoom(state: CounterState, limitNanos: number): boolean {
  return state.spentNanos + inFlightNanos(state) < limitNanos;
}

/**
 * How long a client refused only because of reservations in flight is told to wait: those
 * requests end (and the ledger settles them, usually below their estimates) within seconds.
 */
export const IN_FLIGHT_RETRY_MS = 1_000;

/** A refusal: the budget named, its counter, what to tell the client and when asking again can succeed. */
export type Refusal = { kind: 'spent'; budget: BudgetRef; state: CounterState; estimateNanos: number; retryAfterMs: number; message: string };

export type BudgetVerdict =
  /** Admit, reserving `estimateNanos` on every budget; `downgrade` is the spent budget that sends it to the cheapest tier. */
  | { kind: 'within'; estimateNanos: number; downgrade?: BudgetRef }
  /** Refuse: of the refusing budgets, the one that frees up last. */
  | Refusal;

/**
 * Decides a request on its budgets. A spent `downgrade` budget does not refuse: the request is
 * priced again at the cheapest tier (`estimate(true)`) and the `refuse` budgets are checked with
 * that. A spent `refuse` budget refuses; with several, the one that frees up last is named, since
 * asking before then cannot succeed.
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
  const downgrade = refs.find((ref) => ref.action === 'downgrade' && !hasRoom(stateOf(ref), ref.limitNanos));
  const estimateNanos = downgrade ? estimate(true) : full;
  let refusal: Refusal | undefined;
  for (const ref of refs) {
    if (ref.action !== 'refuse' || hasRoom(stateOf(ref), ref.limitNanos)) continue;
    const r = refusalOf(ref, stateOf(ref), estimateNanos, now);
    if (!refusal || r.retryAfterMs > refusal.retryAfterMs) refusal = r;
  }
  if (refusal) return refusal;
  return downgrade ? { kind: 'within', estimateNanos, downgrade } : { kind: 'within', estimateNanos };
}

/**
 * The refusal of a request a budget has no room for. Spent (the ledger's spend alone reached the
 * limit): retry when the window resets. Held only by reservations of requests in flight: retry in
 * IN_FLIGHT_RETRY_MS, since they settle at their real cost within seconds.
 */
export function refusalOf(ref: BudgetRef, state: CounterState, estimateNanos: number, now: number): Refusal {
  const whose = ref.scope === 'tenant' ? '' : ` (per ${ref.scope})`;
  const budget = `Budget ${ref.budget}${whose} of ${usd(ref.limitNanos)} for the ${ref.window} window ${ref.windowId}`;
  const used = `${usd(state.spentNanos)} spent and ${usd(inFlightNanos(state))} reserved by requests in flight`;
  const resets = `it resets at ${new Date(ref.resetsAt).toISOString()}`;
  const untilReset = Math.max(0, ref.resetsAt - now);
  const held = state.spentNanos < ref.limitNanos;
  return {
    kind: 'spent',
    budget: ref,
    state,
    estimateNanos,
    retryAfterMs: held ? Math.min(IN_FLIGHT_RETRY_MS, untilReset) : untilReset,
    message: held
      ? `${budget} is held by requests in flight (${used}); retry when they end, or after ${resets}.`
      : `${budget} is used up (${used}); ${resets}.`,
  };
}

/** Nano-USD as dollars with enough digits to see a small budget move ($0.0100, $12.50). */
function usd(nanos: number): string {
  const dollars = nanos / NANOS_PER_USD;
  return `$${dollars >= 1 ? dollars.toFixed(2) : dollars.toFixed(4)}`;
}
