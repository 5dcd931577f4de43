import { describe, expect, it } from 'vitest';
import { budgetPeriod, type BudgetRef } from '@sluice/contracts';
import { checkBudgets, counterOf, hasRoom, IN_FLIGHT_RETRY_MS, inFlightNanos, type CounterState } from './budget-check.js';

const NOW = Date.UTC(2026, 10, 30, 15, 0, 0);
const USD = 1_000_000_000;

function budget(id: string, limitUsd: number, over: Partial<BudgetRef> = {}): BudgetRef {
  return {
    budget: id,
    scope: 'tenant',
    budgetKey: `acme.${id}`,
    window: 'daily',
    limitUsd,
    limitNanos: limitUsd * USD,
    action: 'refuse',
    thresholds: [0.5, 1],
    ...budgetPeriod('daily', NOW),
    ...over,
  };
}
const state = (spentNanos: number, settledNanos = 0, admittedNanos = 0): CounterState => ({ spentNanos, settledNanos, admittedNanos });

describe('the reservation rule', () => {
  it('given spent and in flight, then there is room only while their sum is under the limit', () => {
    // spent 6, admitted 5 of which 2 settled: 3 in flight; 6 + 3 = 9 < 10
    expect(hasRoom(state(6, 2, 5), 10)).toBe(true);
    // 6 + 4 = 10: spent
    expect(hasRoom(state(6, 2, 6), 10)).toBe(false);
  });

  it('given more settled than admitted (a counter reset by hand), then nothing counts as in flight, never a credit', () => {
    expect(inFlightNanos(state(0, 9, 4))).toBe(0);
    expect(hasRoom(state(9, 9, 4), 10)).toBe(true);
    expect(hasRoom(state(10, 10, 4), 10)).toBe(false);
  });

  it('names a counter by budget key and window', () => {
    expect(counterOf(budget('daily', 1))).toBe('acme.daily.2026-11-30');
  });
});

describe('checkBudgets', () => {
  const states = (m: Record<string, CounterState>) => (ref: BudgetRef) => m[ref.budget] ?? state(0);
  const priced = (full: number, cheap: number) => (downgraded: boolean) => (downgraded ? cheap : full);

  it('given room in every budget, then within, reserving the full estimate', () => {
    const v = checkBudgets([budget('a', 1), budget('b', 5)], states({}), priced(1000, 10), NOW);
    expect(v).toEqual({ kind: 'within', estimateNanos: 1000 });
  });

  it('given a spent refuse budget, then spent, naming it, its window, limit and reset, with the time until the reset', () => {
    const v = checkBudgets([budget('a', 0.01)], states({ a: state(0.01 * USD, 0, 0.0005 * USD) }), priced(0.001 * USD, 1), NOW);
    expect(v.kind).toBe('spent');
    if (v.kind !== 'spent') return;
    expect(v.budget.budget).toBe('a');
    // 9 h until midnight UTC
    expect(v.retryAfterMs).toBe(9 * 3_600_000);
    expect(v.message).toBe(
      'Budget a of $0.0100 for the daily window 2026-11-30 is used up ($0.0100 spent and $0.0005 reserved by requests in flight); it resets at 2026-12-01T00:00:00.000Z.',
    );
  });

  it('given a budget full only of reservations in flight, then retry in a second: they settle soon, usually below their estimates', () => {
    // $0.009 spent + $0.001 in flight fill $0.01; the budget has room again once they settle below their estimate
    const v = checkBudgets([budget('a', 0.01)], states({ a: state(0.009 * USD, 0, 0.001 * USD) }), priced(0.001 * USD, 1), NOW);
    expect(v).toMatchObject({ kind: 'spent', retryAfterMs: IN_FLIGHT_RETRY_MS });
    expect(v.kind === 'spent' && v.message).toBe(
      'Budget a of $0.0100 for the daily window 2026-11-30 is held by requests in flight ($0.0090 spent and $0.0010 reserved by requests in flight); retry when they end, or after it resets at 2026-12-01T00:00:00.000Z.',
    );
  });

  it('given one budget held by requests in flight and another used up, then the used-up one is named: it frees up last', () => {
    const refs = [budget('held', 1), budget('gone', 1)];
    const v = checkBudgets(refs, states({ held: state(0, 0, USD), gone: state(USD) }), priced(1, 1), NOW);
    expect(v).toMatchObject({ kind: 'spent', budget: { budget: 'gone' }, retryAfterMs: 9 * 3_600_000 });
  });

  it('given a budget held by requests in flight a moment before its reset, then retry at the reset', () => {
    const v = checkBudgets([budget('a', 1)], states({ a: state(0, 0, USD) }), priced(1, 1), Date.UTC(2026, 10, 30, 23, 59, 59, 700));
    expect(v).toMatchObject({ kind: 'spent', retryAfterMs: 300 });
  });

  it('given two spent refuse budgets, then the one that resets last is named: asking before then cannot succeed', () => {
    // New York's day ends five hours after UTC's
    const ny = budget('ny', 1, budgetPeriod('daily', NOW, 'America/New_York'));
    const v = checkBudgets([budget('d', 1), ny], states({ d: state(USD), ny: state(USD) }), priced(1, 1), NOW);
    expect(v.kind === 'spent' && v.budget.budget).toBe('ny');
    expect(v.kind === 'spent' && v.retryAfterMs).toBe(14 * 3_600_000);
    expect(v.kind === 'spent' && v.message).toMatch(/resets at 2026-12-01T05:00:00.000Z\.$/);
  });

  it('given a spent downgrade budget, then within, downgraded, and priced at the cheapest tier', () => {
    const v = checkBudgets([budget('soft', 1, { action: 'downgrade' })], states({ soft: state(USD) }), priced(1000, 10), NOW);
    expect(v).toMatchObject({ kind: 'within', estimateNanos: 10, downgrade: { budget: 'soft' } });
  });

  it('given a downgrade, then the cheaper estimate is reserved, and a spent refuse budget still refuses', () => {
    const refs = [budget('soft', 1, { action: 'downgrade' }), budget('hard', 2)];
    // hard has room (one nano-USD), so the downgraded request is admitted and reserves the cheap price
    const v = checkBudgets(refs, states({ soft: state(USD), hard: state(2 * USD - 1) }), priced(1000, 10), NOW);
    expect(v).toMatchObject({ kind: 'within', estimateNanos: 10, downgrade: { budget: 'soft' } });
    const no = checkBudgets(refs, states({ soft: state(USD), hard: state(2 * USD) }), priced(1000, 10), NOW);
    expect(no).toMatchObject({ kind: 'spent', budget: { budget: 'hard' } });
  });

  it('given a per-user budget, then the message says whose', () => {
    const v = checkBudgets([budget('per-user', 1, { scope: 'user' })], states({ 'per-user': state(USD) }), priced(1, 1), NOW);
    expect(v.kind === 'spent' && v.message).toMatch(/^Budget per-user \(per user\) of \$1.00/);
  });

  it('given any room left, then a request is admitted whatever its estimate; given none, refused (a budget is refused once spent)', () => {
    expect(checkBudgets([budget('a', 1)], states({ a: state(USD - 1) }), priced(100, 1), NOW).kind).toBe('within');
    expect(checkBudgets([budget('a', 1)], states({ a: state(USD) }), priced(100, 1), NOW).kind).toBe('spent');
  });
});
