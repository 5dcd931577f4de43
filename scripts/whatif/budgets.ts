import { budgetsFor, type BudgetRef, type RequestContext, type SluiceConfig } from '@sluice/contracts';
import { nanosCeil } from '@sluice/ledger/whatif';
import { checkBudgets, counterOf, estimateCostNanos, type BudgetVerdict, type CounterState } from '@sluice/limiter/whatif';

/** A request's budgets under the candidate, the limiter's verdict on them, and the reservation it made. */
export interface BudgetPlan {
  refs: BudgetRef[];
  verdict: BudgetVerdict;
}

/**
 * The candidate's budgets as the replay counts them: each counter's spend (what the replayed
 * requests cost, rounded up to nano-USD per request as the ledger counts it) and reservations
 * (the limiter's estimates of requests admitted and not yet ended), from zero at the window's
 * start: a budget window that began before `--from` is missing its earlier spend (docs/whatif.md).
 */
export class BudgetBook {
  private readonly counters = new Map<string, CounterState>();

  constructor(private readonly config: SluiceConfig) {}

  /**
   * The limiter's read-only check before the rate limits (`planBudgets`): the request's budgets and
   * the verdict; undefined when it has none or names a model the config does not have.
   */
  check(tenant: string, ctx: RequestContext, now: number): BudgetPlan | undefined {
    const { request } = ctx;
    const refs = budgetsFor(this.config, { tenant, user: request.user, feature: request.feature, key: ctx.key }, now);
    if (refs.length === 0) return undefined;
    const full = estimateCostNanos(this.config, request);
    if (full === undefined) return undefined;
    const verdict = checkBudgets(
      refs,
      (ref) => this.state(ref),
      (down) => (down ? estimateCostNanos(this.config, request, true)! : full),
      now,
    );
    return { refs, verdict };
  }

  /** The admitted request's estimate, reserved on each of its budgets. */
  reserve(plan: BudgetPlan): void {
    for (const ref of plan.refs) this.state(ref).admittedNanos += plan.verdict.estimateNanos;
  }

  /** The request ended: its reservation settles and what it cost (USD, exact) is spent. */
  settle(plan: BudgetPlan, costUsd: string): void {
    const nanos = Number(nanosCeil(costUsd));
    for (const ref of plan.refs) {
      const s = this.state(ref);
      s.settledNanos += plan.verdict.estimateNanos;
      s.spentNanos += nanos;
    }
  }

  private state(ref: BudgetRef): CounterState {
    const key = counterOf(ref);
    let s = this.counters.get(key);
    if (!s) this.counters.set(key, (s = { spentNanos: 0, settledNanos: 0, admittedNanos: 0 }));
    return s;
  }
}
