import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { carryOut, consumeEvents, encodeJson, getJson, publishEvent, type Consumption } from '@sluice/bus';
import { BudgetKeys, budgetPeriod, Consumers, NANOS_PER_USD, parseConfig, type BudgetSpend, type ChatErrorReply, type RequestKey } from '@sluice/contracts';
import { minimalConfig } from '@sluice/bus/testing';
import { collectEvents, startTestBus, type TestBus } from '@sluice/bus/testing';
import { chatRequested } from './int-env.js';
import { answer, completed as completedBy } from '@sluice/contracts/testing';
import { onChatCompleted, onChatRequested } from './handlers.js';
import { LimitStore } from './store.js';
import { BudgetCounters } from './counters.js';
import { IN_FLIGHT_RETRY_MS } from './budget-check.js';
import { streamDecisions } from './decided.js';

// Budgets against a real nats-server: the limiter's reservations on sluice_budgets with several
// replicas, refusals and downgrades from the ledger's spend, and a virtual key's rate limits.

/** $1 per million tokens either way: a request of 10 prompt + 90 output tokens reserves 100,000 nano-USD ($0.0001). */
const config = {
  ...minimalConfig([
    { id: 'race', budgets: [{ id: 'daily', scope: 'tenant', window: 'daily', limitUsd: 0.01 }] },
    { id: 'spent', budgets: [{ id: 'monthly', scope: 'tenant', window: 'monthly', limitUsd: 5 }] },
    { id: 'soft', budgets: [{ id: 'cap', scope: 'tenant', window: 'daily', limitUsd: 1, action: 'downgrade' }] },
    { id: 'people', budgets: [{ id: 'each', scope: 'user', window: 'daily', limitUsd: 0.0002 }] },
    { id: 'keyed', limits: { requestsPerMinute: 60, tokensPerMinute: 1_000_000 } },
    { id: 'redo', budgets: [{ id: 'daily', scope: 'tenant', window: 'daily', limitUsd: 0.0001 }] },
  ]),
  models: {
    m1: { deployments: ['d1'], fallback: [], price: { inputPerMTok: 1, outputPerMTok: 1 } },
    m10: { deployments: ['d1'], fallback: [], price: { inputPerMTok: 10, outputPerMTok: 10 } },
  },
  tiers: [
    { name: 'cheap', model: 'm1', maxComplexity: 0.5 },
    { name: 'premium', model: 'm10', maxComplexity: 1 },
  ],
};
parseConfig(config);
const ESTIMATE = 100_000;
const LIMIT = 0.01 * NANOS_PER_USD;

let env: TestBus;
beforeAll(async () => {
  env = await startTestBus(config, { name: 'limiter-budgets' });
});
afterAll(async () => {
  await env?.stop();
});

/** One limiter replica: its own rate-limit store and budget counters, on the shared durable. */
async function replica(counted?: { decisions: number }): Promise<{ consumption: Consumption; stop: () => Promise<void> }> {
  const store = new LimitStore(env.buckets.limits, { log: env.log });
  const budgets = new BudgetCounters(env.buckets.budgets, { log: env.log });
  await budgets.start();
  const handle = onChatRequested({ store, control: env.control, log: env.log, budgets });
  const consumption = await consumeEvents(env.bus, {
    consumer: Consumers.limiter,
    concurrency: 256,
    log: env.log,
    handler: async (event, delivery) => {
      if (counted) counted.decisions++;
      return handle(event, delivery);
    },
  });
  return {
    consumption,
    stop: async () => {
      await consumption.stop();
      budgets.stop();
      await store.close();
    },
  };
}

const daily = (tenant: string, id: string) => `${tenant}.${id}`;
const today = () => budgetPeriod('daily', Date.now()).windowId;

describe('budgets with three limiter replicas', () => {
  it('never reserves more than the budget however many requests race across replicas', async () => {
    const counts = [{ decisions: 0 }, { decisions: 0 }, { decisions: 0 }];
    const replicas = await Promise.all(counts.map((c) => replica(c)));
    const seen = collectEvents(env.bus);
    const N = 300;
    try {
      await Promise.all(Array.from({ length: N }, (_, i) => publishEvent(env.bus.js, chatRequested('race', `race-${i}`, { maxOutputTokens: 90 }))));
      await seen.until(() => seen.of('chat.admitted').length + seen.of('chat.rejected').length === N, 20_000);
      const admitted = seen.of('chat.admitted');
      const rejected = seen.of('chat.rejected');
      const reserved = admitted.reduce((sum, e) => sum + e.data.budgets!.reservedNanos, 0);
      const counter = await getJson<number>(env.buckets.budgets, BudgetKeys.admitted(daily('race', 'daily'), today()));
      // nothing settles in this test: every admitted request is in flight, so the rule admits
      // exactly what fits, $0.01 / $0.0001
      console.log(
        `[budget overshoot, reservations] 3 replicas, ${N} concurrent requests of ${ESTIMATE} nano-USD against ${LIMIT} nano-USD: ` +
          `${admitted.length} admitted reserving ${reserved} (overshoot ${reserved - LIMIT}), ${rejected.length} refused; ` +
          `decisions per replica ${counts.map((c) => c.decisions).join('/')}`,
      );
      expect(reserved).toBeLessThanOrEqual(LIMIT);
      expect(admitted).toHaveLength(LIMIT / ESTIMATE);
      expect(counter?.value).toBe(reserved);
      expect(rejected).toHaveLength(N - LIMIT / ESTIMATE);
      expect(admitted[0]!.data.budgets).toEqual({ counters: [`race.daily.${today()}`], reservedNanos: ESTIMATE });
      // nothing is spent, only reserved by requests in flight: ask again in a second, not at the reset
      for (const r of rejected) expect(r.data).toMatchObject({ code: 'insufficient_quota', status: 429, stage: 'limiter', retryAfterMs: IN_FLIGHT_RETRY_MS });
      expect(rejected[0]!.data.message).toMatch(
        /^Budget daily of \$0.0100 for the daily window \S+ is held by requests in flight \(\$0.0000 spent and \$0.0100 reserved/,
      );
      // every replica took part (the durable hands each message to one of them)
      for (const c of counts) expect(c.decisions).toBeGreaterThan(0);
    } finally {
      seen.stop();
      await Promise.all(replicas.map((r) => r.stop()));
    }
  });

  it('refuses once the ledger says the budget is spent, naming it and its reset, with retry-after until then', async () => {
    const r = await replica();
    const seen = collectEvents(env.bus);
    const replies: ChatErrorReply[] = [];
    const sub = env.bus.nc.subscribe('test.reply.spent', { callback: (_e, m) => void replies.push(m.json<ChatErrorReply>()) });
    try {
      const month = budgetPeriod('monthly', Date.now());
      // what the ledger wrote: the last request took the spend to $5.00005 of $5 (within the
      // overshoot bound), nothing in flight: the budget is spent
      const spend: BudgetSpend = { spentNanos: 5_000_050_000, settledNanos: 0, spentUsd: '5.00005', seq: 1 };
      await env.buckets.budgets.put(BudgetKeys.spend('spent.monthly', month.windowId), encodeJson(spend));
      await publishEvent(env.bus.js, chatRequested('spent', 'spent-1', { maxOutputTokens: 90 }, 'test.reply.spent'));
      const { event } = await seen.next('chat.rejected', 'spent-1');
      await seen.until(() => replies.length === 1);
      const resetIso = new Date(month.resetsAt).toISOString();
      expect(event.data).toMatchObject({ code: 'insufficient_quota', status: 429, stage: 'limiter', model: 'm1', replyTo: 'test.reply.spent' });
      expect(event.data.message).toBe(
        `Budget monthly of $5.00 for the monthly window ${month.windowId} is used up ($5.00 spent and $0.0000 reserved by requests in flight); it resets at ${resetIso}.`,
      );
      expect(event.data.retryAfterMs).toBeGreaterThan(0);
      expect(event.data.retryAfterMs).toBeLessThanOrEqual(month.resetsAt - event.at);
      expect(replies[0]).toEqual({
        requestId: 'spent-1',
        error: { code: 'insufficient_quota', status: 429, message: event.data.message, retryAfterMs: event.data.retryAfterMs },
      });
      // a refusal reserves nothing and debits no rate limit
      expect(await getJson(env.buckets.budgets, BudgetKeys.admitted('spent.monthly', month.windowId))).toBeUndefined();
      expect(await getJson(env.buckets.limits, 't.spent')).toBeUndefined();

      // the ledger settles some spend back under the limit (a correction): the next request fits
      await env.buckets.budgets.put(BudgetKeys.spend('spent.monthly', month.windowId), encodeJson({ ...spend, spentNanos: 4_000_000_000, seq: 2 }));
      await new Promise((resolve) => setTimeout(resolve, 100));
      await publishEvent(env.bus.js, chatRequested('spent', 'spent-2', { maxOutputTokens: 90 }));
      expect((await seen.next('chat.admitted', 'spent-2')).event.data.budgets?.reservedNanos).toBe(ESTIMATE);
    } finally {
      sub.unsubscribe();
      seen.stop();
      await r.stop();
    }
  });

  it('downgrades instead of refusing when the spent budget says so, reserving the cheapest tier’s price', async () => {
    const r = await replica();
    const seen = collectEvents(env.bus);
    try {
      await env.buckets.budgets.put(BudgetKeys.spend('soft.cap', today()), encodeJson({ spentNanos: NANOS_PER_USD, settledNanos: 0, spentUsd: '1', seq: 1 }));
      // m10 reserves 1,000,000 nano-USD; downgraded to m1, 100,000
      await publishEvent(env.bus.js, chatRequested('soft', 'soft-1', { model: 'm10', maxOutputTokens: 90 }));
      const { event } = await seen.next('chat.admitted', 'soft-1');
      expect(event.data.ctx.downgrade).toEqual({ budget: 'cap' });
      expect(event.data.budgets).toEqual({ counters: [`soft.cap.${today()}`], reservedNanos: ESTIMATE });
      expect(event.reason).toMatch(/budget cap is spent: downgraded to the cheapest tier$/);
      // under budget, a request keeps its model
      await env.buckets.budgets.put(BudgetKeys.spend('soft.cap', today()), encodeJson({ spentNanos: 0, settledNanos: ESTIMATE, spentUsd: '0', seq: 2 }));
      await new Promise((resolve) => setTimeout(resolve, 100));
      await publishEvent(env.bus.js, chatRequested('soft', 'soft-2', { model: 'm10', maxOutputTokens: 90 }));
      const second = (await seen.next('chat.admitted', 'soft-2')).event;
      expect(second.data.ctx.downgrade).toBeUndefined();
      expect(second.data.budgets?.reservedNanos).toBe(10 * ESTIMATE);
    } finally {
      seen.stop();
      await r.stop();
    }
  });

  it('keeps a per-user budget per user, and reserves nothing for a model the config lacks', async () => {
    const r = await replica();
    const seen = collectEvents(env.bus);
    try {
      // $0.0002 each: two requests per user
      for (const [i, user] of ['ana', 'ana', 'ana', 'bob'].entries()) {
        await publishEvent(env.bus.js, chatRequested('people', `people-${i}`, { user, maxOutputTokens: 90 }));
        await seen.until(() => seen.entries.some(({ event }) => event.requestId === `people-${i}` && event.type !== 'chat.requested'));
      }
      await publishEvent(env.bus.js, chatRequested('people', 'people-x', { user: 'ana', model: 'gpt-nope' }));
      const unknown = (await seen.next('chat.admitted', 'people-x')).event;
      expect(seen.of('chat.admitted').map((e) => e.requestId)).toEqual(['people-0', 'people-1', 'people-3', 'people-x']);
      expect(seen.of('chat.rejected').map((e) => e.requestId)).toEqual(['people-2']);
      expect(seen.of('chat.rejected')[0]!.data.message).toMatch(/^Budget each \(per user\) of \$0.0002/);
      const [ana, bob] = [seen.of('chat.admitted')[0]!, seen.of('chat.admitted')[2]!];
      expect(ana.data.budgets!.counters[0]).not.toBe(bob.data.budgets!.counters[0]);
      // the router refuses an unknown model: it costs nothing and is not reserved
      expect(unknown.data.budgets).toBeUndefined();
    } finally {
      seen.stop();
      await r.stop();
    }
  });

  it('answers a redelivered refusal again without reserving or deciding it twice', async () => {
    const store = new LimitStore(env.buckets.limits, { log: env.log });
    const budgets = new BudgetCounters(env.buckets.budgets, { log: env.log });
    await budgets.start();
    const decide = onChatRequested({ store, control: env.control, log: env.log, budgets, decided: streamDecisions(env.bus.js) });
    const seen = collectEvents(env.bus);
    const replies: ChatErrorReply[] = [];
    const sub = env.bus.nc.subscribe('test.reply.redo', { callback: (_e, m) => void replies.push(m.json<ChatErrorReply>()) });
    try {
      const arrive = async (id: string) => {
        const event = chatRequested('redo', id, { maxOutputTokens: 90 }, 'test.reply.redo');
        return { event, seq: (await publishEvent(env.bus.js, event)).seq };
      };
      // $0.0001: the first request fills it
      const first = await arrive('redo-1');
      await carryOut(env.bus, await decide(first.event, { seq: first.seq, deliveryCount: 1 }));
      await carryOut(env.bus, await decide(first.event, { seq: first.seq, deliveryCount: 2 }));
      const second = await arrive('redo-2');
      await carryOut(env.bus, await decide(second.event, { seq: second.seq, deliveryCount: 1 }));
      await carryOut(env.bus, await decide(second.event, { seq: second.seq, deliveryCount: 2 }));
      await seen.until(() => replies.length === 2);
      expect(seen.of('chat.admitted').map((e) => e.requestId)).toEqual(['redo-1']);
      expect(seen.of('chat.rejected').map((e) => e.requestId)).toEqual(['redo-2']);
      expect(replies[1]).toEqual(replies[0]);
      expect(replies[0]!.error.code).toBe('insufficient_quota');
      // reserved once, for the one admission
      expect((await getJson<number>(env.buckets.budgets, BudgetKeys.admitted('redo.daily', today())))?.value).toBe(ESTIMATE);
    } finally {
      sub.unsubscribe();
      seen.stop();
      budgets.stop();
      await store.close();
    }
  });
});

describe('budget counters', () => {
  it('keeps the admitted counter exact when three replicas reserve and release on it at once', async () => {
    const replicas = await Promise.all(
      [0, 1, 2].map(async () => {
        const c = new BudgetCounters(env.buckets.budgets);
        await c.start();
        return c;
      }),
    );
    const ref = {
      budget: 'exact',
      scope: 'tenant' as const,
      budgetKey: 'counters.exact',
      window: 'daily' as const,
      limitUsd: 1,
      limitNanos: NANOS_PER_USD,
      action: 'refuse' as const,
      thresholds: [1],
      ...budgetPeriod('daily', Date.now()),
    };
    try {
      // 600 reservations of $0.002 for a $1 budget: 500 fit; then 100 of them are released
      const results = await Promise.all(Array.from({ length: 600 }, (_, i) => replicas[i % 3]!.reserve([ref], 2_000_000)));
      expect(results.filter((r) => r.reserved)).toHaveLength(500);
      const refused = results.find((r) => !r.reserved);
      expect(refused).toMatchObject({ reserved: false, spent: { budget: 'exact' }, state: { admittedNanos: NANOS_PER_USD } });
      await Promise.all(Array.from({ length: 100 }, (_, i) => replicas[i % 3]!.release([ref], 2_000_000)));
      const counter = await getJson<number>(env.buckets.budgets, BudgetKeys.admitted(ref.budgetKey, ref.windowId));
      expect(counter?.value).toBe(0.8 * NANOS_PER_USD);
    } finally {
      for (const r of replicas) r.stop();
    }
  });
});

describe("a virtual key's rate limits", () => {
  it('are a layer of their own between user and tenant, keyed by key id', async () => {
    const r = await replica();
    const seen = collectEvents(env.bus);
    const key = (id: string): RequestKey => ({ id, limits: { requestsPerMinute: 2, tokensPerMinute: 1_000_000 } });
    try {
      const ids = ['key_aaaaaaaaaaaaaaaaaaaa', 'key_aaaaaaaaaaaaaaaaaaaa', 'key_aaaaaaaaaaaaaaaaaaaa', 'key_bbbbbbbbbbbbbbbbbbbb'];
      for (const [i, id] of ids.entries()) {
        const event = chatRequested('keyed', `keyed-${i}`);
        await publishEvent(env.bus.js, { ...event, data: { ...event.data, ctx: { ...event.data.ctx, key: key(id) } } });
        await seen.until(() => seen.entries.some(({ event: e }) => e.requestId === `keyed-${i}` && e.type !== 'chat.requested'));
      }
      expect(seen.of('chat.admitted').map((e) => e.requestId)).toEqual(['keyed-0', 'keyed-1', 'keyed-3']);
      expect(seen.of('chat.throttled')[0]).toMatchObject({ requestId: 'keyed-2', data: { layer: 'key', limit: 'requests' } });
      expect(seen.of('chat.throttled')[0]!.reason).toMatch(/^key requests\/min: needs 1, 0 of 2 left/);
      expect(await getJson(env.buckets.limits, 'k.keyed.key_aaaaaaaaaaaaaaaaaaaa')).toBeDefined();
      // the tenant's bucket counted all three admissions, and not the throttled one
      const tenant = (await getJson<{ requests: number }>(env.buckets.limits, 't.keyed'))!.value.requests;
      // 60 a minute refill one a second: far slower than this test
      expect(tenant).toBeGreaterThanOrEqual(57);
      expect(tenant).toBeLessThan(58);
    } finally {
      seen.stop();
      await r.stop();
    }
  });

  it("are charged the actual usage after completion, like the user's and the tenant's", async () => {
    const store = new LimitStore(env.buckets.limits, { adjustLingerMs: 0 });
    const reconcile = onChatCompleted({ store, control: env.control, log: env.log });
    const id = 'key_cccccccccccccccccccc';
    const ctx = { ...chatRequested('keyed', 'keyed-r').data.ctx, key: { id, limits: { requestsPerMinute: 60, tokensPerMinute: 6_000 } } };
    try {
      // the estimate is 10 + 256 tokens; the answer used 500 more
      const usage = { prompt_tokens: 10, completion_tokens: 756, total_tokens: 766 };
      await reconcile(completedBy('keyed-r', 'keyed', { ctx, answer: { ...answer(), usage } }));
      const bucket = (await getJson<{ tokens: number }>(env.buckets.limits, `k.keyed.${id}`))!.value;
      expect(bucket.tokens).toBeCloseTo(6_000 - 500, 0);
    } finally {
      await store.close();
    }
  });
});
