import { describe, expect, it } from 'vitest';
import { budgetsFor, parseConfig } from '@sluice/contracts';
import { admitted, answer, chatRequest, completed, requestContext } from '@sluice/contracts/testing';
import { minimalConfig } from '@sluice/bus/testing';
import {
  budgetChange,
  counterId,
  emptyCounter,
  firstEndings,
  foldSpend,
  reached,
  spendValue,
  type BudgetsOf,
  type Counter,
  type Reserved,
  type Settled,
} from './spend.js';
import { coalescedRequest, completedRequest, embeddingUse, priceOf, semanticHitRequest } from './fixtures.js';
import { project } from './project.js';

const NOW = Date.UTC(2026, 10, 30, 12);
// one tenant budget of 1 USD a day with the default thresholds, one of 10 USD a month at 80 %
const config = parseConfig({
  ...minimalConfig([
    {
      id: 't1',
      budgets: [
        { id: 'daily', scope: 'tenant', window: 'daily', limitUsd: 1 },
        { id: 'monthly', scope: 'tenant', window: 'monthly', limitUsd: 10, thresholds: [0.8], action: 'downgrade' },
      ],
    },
  ]),
});
const budgetsOf: BudgetsOf = (subject, at) => budgetsFor(config, subject, at);
const DAY = 't1.daily.2026-11-30';
const MONTH = 't1.monthly.2026-11';

const admittedWith = (id: string, counters: string[], reservedNanos = 1000) =>
  admitted(id, 't1', { ctx: requestContext(chatRequest({ user: 'u1' })), budgets: { counters, reservedNanos } }, { at: NOW });

/** A request that reserved on both counters and cost `usd`. */
const settledAt = (seq: number, usd: string, reservedNanos = 1000): Settled => ({
  requestId: `r${seq}`,
  seq,
  at: NOW + seq,
  costUsd: usd,
  counters: [DAY, MONTH],
  reservedNanos,
});

/** Both counters as the first admission names them. */
function startingCounters(): Map<string, Counter> {
  const { reserved } = budgetChange(1, admittedWith('r0', [DAY, MONTH]), undefined, budgetsOf);
  const { counters } = foldSpend(new Map(), [reserved!], []);
  return new Map(counters.map((c) => [c.counter, c]));
}

describe('budget spend', () => {
  it('splits a counter into its budget key, window and tenant', () => {
    expect(counterId('t1.daily.2026-11-30')).toEqual({ counter: 't1.daily.2026-11-30', budgetKey: 't1.daily', windowId: '2026-11-30', tenant: 't1' });
    expect(counterId('t1.per-user.0123456789abcdef.2026-11')).toMatchObject({ budgetKey: 't1.per-user.0123456789abcdef', windowId: '2026-11' });
    for (const bad of ['nodots', 't1.', '.x.y', 't1.daily.']) expect(() => counterId(bad)).toThrow(/not <tenant>/);
  });

  it('given chat.admitted with budgets, reserves on each counter with the budget the live config names', () => {
    const { reserved, ended } = budgetChange(7, admittedWith('r1', [DAY, MONTH], 5000), undefined, budgetsOf);
    expect(ended).toBeUndefined();
    expect(reserved).toMatchObject({ requestId: 'r1', tenant: 't1', seq: 7, reservedNanos: 5000 });
    expect(reserved!.counters.map((c) => c.budget?.limitNanos)).toEqual([1e9, 1e10]);
    expect(reserved!.counters[0]!.budget).toMatchObject({
      budget: 'daily',
      thresholds: [0.5, 0.75, 0.9, 1],
      action: 'refuse',
      resetsAt: Date.UTC(2026, 11, 1),
    });
  });

  it('keeps a counter the config no longer names, without a budget (counted, never alerted)', () => {
    const { reserved } = budgetChange(7, admittedWith('r1', ['t1.gone.2026-11-30']), undefined, budgetsOf);
    expect(reserved!.counters[0]).toEqual({ counter: 't1.gone.2026-11-30', budgetKey: 't1.gone', windowId: '2026-11-30', tenant: 't1' });
  });

  it('ignores chat.admitted without budgets, and events that end nothing', () => {
    expect(budgetChange(1, admitted('r1', 't1', {}, { at: NOW }), undefined, budgetsOf)).toEqual({});
    expect(budgetChange(1, admittedWith('r1', []), undefined, budgetsOf)).toEqual({});
  });

  it('takes a terminal event as the request ending, with its cost (0 when none)', () => {
    const done = completed('r1', 't1', { answer: answer('m1', 10, 5) }, { at: NOW + 5 });
    expect(budgetChange(9, done, '0.000015', budgetsOf)).toEqual({ ended: { requestId: 'r1', seq: 9, at: NOW + 5, costUsd: '0.000015' } });
    expect(budgetChange(9, done, undefined, budgetsOf).ended?.costUsd).toBe('0');
  });

  it('takes every kind of cached answer as the ending, at no cost of its own (its embedding is added when it settles)', () => {
    const r = { id: 'r1', tenant: 't1', at: NOW };
    const coalesced = coalescedRequest(r, 'gpt-4o-mini', 10, 5, 20, 'r0').at(-1)!;
    const semantic = semanticHitRequest(r, 'gpt-4o-mini', 10, 5, 20, { matched: 'r0', similarity: 0.95, embeddingTokens: 9 }).at(-1)!;
    for (const e of [coalesced, semantic]) {
      const cost = project(9, e, priceOf).request?.update?.cost_usd;
      expect(cost).toBe('0');
      expect(budgetChange(9, e, cost, budgetsOf)).toEqual({ ended: { requestId: 'r1', seq: 9, at: e.at, costUsd: '0' } });
    }
    // a miss is not an ending, embedding or not
    const miss = completedRequest(r, 'gpt-4o-mini', 10, 5, 20, embeddingUse(9))[2]!;
    expect(miss.type).toBe('cache.missed');
    expect(budgetChange(3, miss, undefined, budgetsOf)).toEqual({});
  });

  it('settles a request once: its first ending', () => {
    const e = (requestId: string, seq: number) => ({ requestId, seq, at: seq, costUsd: '1' });
    expect(firstEndings([e('a', 5), e('b', 3), e('a', 4)]).map((x) => [x.requestId, x.seq])).toEqual([
      ['b', 3],
      ['a', 4],
    ]);
  });

  it('adds exact cost, nano-USD rounded up per request, and each reservation to settled', () => {
    const { counters } = foldSpend(startingCounters(), [], [settledAt(2, '0.1', 700), settledAt(3, '0.2', 300), settledAt(4, '0.0000000001', 1)]);
    const day = counters.find((c) => c.counter === DAY)!;
    expect(spendValue(day, 4)).toEqual({ spentNanos: 300_000_001, settledNanos: 1001, spentUsd: '0.3000000001', seq: 4 });
    expect(day.requests).toBe(3);
  });

  it('given spend below 50 %, when a request takes it to 80 %, then 50 % and 75 % are crossed at that request', () => {
    const first = foldSpend(startingCounters(), [], [settledAt(2, '0.4')]);
    expect(first.crossings).toEqual([]);
    const before = new Map(first.counters.map((c) => [c.counter, c]));
    const { crossings } = foldSpend(before, [], [settledAt(3, '0.4')]);
    expect(crossings.map((c) => [c.alertId, c.seq])).toEqual([
      ['alert.t1.daily.2026-11-30.500', 3],
      ['alert.t1.daily.2026-11-30.750', 3],
    ]);
    const e = crossings[1]!.event;
    expect(e).toMatchObject({ id: 'alert.t1.daily.2026-11-30.750:budget.threshold_crossed', type: 'budget.threshold_crossed', tenant: 't1', at: NOW + 3 });
    expect(e.data).toEqual({
      budget: 'daily',
      budgetKey: 't1.daily',
      scope: 'tenant',
      window: 'daily',
      windowId: '2026-11-30',
      resetsAt: Date.UTC(2026, 11, 1),
      threshold: 0.75,
      limitUsd: 1,
      spentUsd: '0.8',
      action: 'refuse',
    });
  });

  it('crosses a threshold once per window, however much more is spent', () => {
    let counters = startingCounters();
    const alerts: string[] = [];
    for (let seq = 2; seq < 70; seq++) {
      const r = foldSpend(counters, [], [settledAt(seq, '0.15')]);
      alerts.push(...r.crossings.map((c) => c.alertId));
      counters = new Map(r.counters.map((c) => [c.counter, c]));
    }
    expect(alerts).toEqual([
      'alert.t1.daily.2026-11-30.500',
      'alert.t1.daily.2026-11-30.750',
      'alert.t1.daily.2026-11-30.900',
      'alert.t1.daily.2026-11-30.1000',
      'alert.t1.monthly.2026-11.800',
    ]);
  });

  it('crosses exactly at the threshold, not a nano-USD before', () => {
    expect(reached(499_999_999n, 1e9, 500)).toBe(false);
    expect(reached(500_000_000n, 1e9, 500)).toBe(true);
    const { crossings } = foldSpend(startingCounters(), [], [settledAt(2, '0.499999999')]);
    expect(crossings).toEqual([]);
  });

  it('decides the same alerts whatever the batches: one batch or one event at a time', () => {
    const settled = [settledAt(2, '0.3'), settledAt(3, '0.3'), settledAt(4, '0.3'), settledAt(5, '0.3')];
    const whole = foldSpend(startingCounters(), [], settled).crossings;
    let counters = startingCounters();
    const oneByOne = settled.flatMap((s) => {
      const r = foldSpend(counters, [], [s]);
      counters = new Map(r.counters.map((c) => [c.counter, c]));
      return r.crossings;
    });
    expect(oneByOne).toEqual(whole);
    expect(whole.map((c) => c.event.data.spentUsd)).toEqual(['0.6', '0.9', '0.9', '1.2']);
  });

  it('does not alert a counter without a budget', () => {
    const bare = new Map([[DAY, emptyCounter(counterId(DAY), 1)]]);
    const { crossings, counters } = foldSpend(bare, [], [{ ...settledAt(2, '5'), counters: [DAY] }]);
    expect(crossings).toEqual([]);
    expect(counters[0]!.spentNanos).toBe(5_000_000_000n);
  });

  it('stops alerting a window once an admission no longer finds its budget in the config', () => {
    const counters = foldSpend(startingCounters(), [], [settledAt(2, '0.1')]).counters;
    const removed: Reserved = { requestId: 'r9', tenant: 't1', seq: 3, reservedNanos: 1, counters: [counterId(DAY), counterId(MONTH)] };
    const { crossings, counters: after } = foldSpend(new Map(counters.map((c) => [c.counter, c])), [removed], [settledAt(4, '2')]);
    expect(crossings).toEqual([]);
    expect(after.find((c) => c.counter === DAY)!.spentNanos).toBe(2_100_000_000n);
  });

  it('applies the latest admission’s limit to the window: a lowered limit alerts what is now reached', () => {
    const counters = foldSpend(startingCounters(), [], [settledAt(2, '0.6')]).counters;
    const lowered: Reserved = {
      requestId: 'r9',
      tenant: 't1',
      seq: 3,
      reservedNanos: 1,
      counters: [{ ...counterId(DAY), budget: { ...counters[0]!.budget!, limitUsd: 0.7, limitNanos: 7e8 } }],
    };
    const { crossings } = foldSpend(new Map(counters.map((c) => [c.counter, c])), [lowered], [settledAt(4, '0.05')]);
    expect(crossings.map((c) => c.threshold)).toEqual([0.75, 0.9]);
  });
});
