import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { BudgetKeys, budgetPeriod, NANOS_PER_USD, Topology, type BudgetSpend } from '@sluice/contracts';
import { eventually } from '@sluice/bus/testing';
import { defaultConfig, sleep, startE2eStack, type E2eStack } from './harness.js';

// Issue 11, item 1: a budget in dollars through the real stack, with three limiter replicas
// sharing the admission durable, the real ledger settling each request's reservation with its
// exact cost, and the simulator answering. An unchanged OpenAI SDK app spends the dev tenant's
// budget; what the limiters admitted, what the ledger counted and the overshoot are printed.

const LIMIT_USD = 0.002;
const LIMIT = LIMIT_USD * NANOS_PER_USD;
const MAX_TOKENS = 100;
const CONCURRENCY = 24;
/** A bound on the requests the test sends, should the budget never say it is used up. */
const MAX_REQUESTS = 600;

let stack: E2eStack;
let jsm: JetStreamManager;
let budgetConfig: Record<string, any>;
beforeAll(async () => {
  budgetConfig = defaultConfig();
  budgetConfig.tenants[0].budgets = [{ id: 'daily', scope: 'tenant', window: 'daily', limitUsd: LIMIT_USD }];
  stack = await startE2eStack({ config: budgetConfig, replicas: { limiter: 3 } });
  jsm = await jetstreamManager(stack.nc);
});
afterAll(async () => {
  await stack?.close();
});

/** A key of `sluice_budgets`, read from the bucket's stream (the test needs no KV client). */
async function budgetValue<T>(key: string): Promise<T | undefined> {
  const bucket = `KV_${Topology.buckets.budgets.name}`;
  const msg = await jsm.streams.getMessage(bucket, { last_by_subj: `$KV.${Topology.buckets.budgets.name}.${key}` }).catch(() => null);
  return msg ? (JSON.parse(new TextDecoder().decode(msg.data)) as T) : undefined;
}

type Outcome = { ok: true; model: string } | { ok: false; status: number; code: string | null | undefined; message: string; retryAfter: string | null };

async function ask(client: OpenAI, i: number, model = 'gpt-4o-mini'): Promise<Outcome> {
  try {
    const c = await client.chat.completions.create({
      model,
      max_tokens: MAX_TOKENS,
      messages: [{ role: 'user', content: `Question ${i}: what is a budget?` }],
    });
    return { ok: true, model: c.model };
  } catch (e) {
    if (!(e instanceof OpenAI.APIError)) throw e;
    return { ok: false, status: e.status ?? 0, code: e.code, message: e.message, retryAfter: e.headers?.get('retry-after') ?? null };
  }
}

describe('a dollar budget with three limiter replicas', () => {
  it('refuses with 429 insufficient_quota once spent, and overshoots by at most what was in flight', async () => {
    expect(stack.replicas.get('limiter')).toHaveLength(3);
    const client = stack.openai();
    // clients that do as they are told: a budget held by requests in flight says retry in a
    // second, so they wait and ask again; one that is used up says retry at the reset, so they stop
    const outcomes: Outcome[] = [];
    let next = 0;
    let usedUp = false;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (!usedUp && next < MAX_REQUESTS) {
          const o = await ask(client, next++);
          outcomes.push(o);
          if (o.ok) continue;
          if (Number(o.retryAfter) > 1) usedUp = true;
          else await sleep(1_000);
        }
      }),
    );
    const answered = outcomes.filter((o) => o.ok).length;
    const refused = outcomes.filter((o): o is Extract<Outcome, { ok: false }> => !o.ok);
    for (const r of refused) expect(r).toMatchObject({ status: 429, code: 'insufficient_quota' });
    const held = refused.filter((r) => r.message.includes('is held by requests in flight'));
    const spent = refused.filter((r) => r.message.includes('is used up'));
    expect(held.length + spent.length).toBe(refused.length);
    expect(usedUp).toBe(true);

    const day = budgetPeriod('daily', Date.now());
    const reset = new Date(day.resetsAt).toISOString();
    expect(spent[0]!.message).toContain(`Budget daily of $0.0020 for the daily window ${day.windowId} is used up`);
    expect(spent[0]!.message).toContain(`it resets at ${reset}`);
    // Retry-After in seconds until the window resets (a day at most); a second while only held
    const retryAfter = Number(spent[0]!.retryAfter);
    expect(retryAfter).toBeGreaterThan(1);
    expect(retryAfter).toBeLessThanOrEqual(Math.ceil((day.resetsAt - Date.now()) / 1000) + 5);
    for (const r of held) expect(r.retryAfter).toBe('1');

    // every request has ended: once the ledger has projected them all, it has settled every
    // reservation, and the limiters' admitted counter meets the ledger's settled sum exactly
    const counter = `dev.daily`;
    const settled = await eventually(async () => {
      const spend = await budgetValue<BudgetSpend>(BudgetKeys.spend(counter, day.windowId));
      const admitted = await budgetValue<number>(BudgetKeys.admitted(counter, day.windowId));
      expect(spend).toBeDefined();
      expect(spend!.settledNanos).toBe(admitted);
      return { spend: spend!, admitted: admitted! };
    }, 30_000);
    const { spend, admitted } = settled;
    // what one request may cost at most: its estimate (prompt ~15 tokens at $0.15/MTok + 100 at $0.60/MTok)
    const perRequest = Math.ceil(admitted / answered);
    const overshoot = spend.spentNanos - LIMIT;
    console.log(
      `[budget overshoot, 3 limiter replicas, e2e] limit ${LIMIT} nano-USD ($${LIMIT_USD}); ${CONCURRENCY} clients in flight: ` +
        `${answered} answered, ${held.length} refused while held by requests in flight (retried after 1 s), ${spent.length} refused as used up; ` +
        `reserved (estimates) ${admitted}, spent (ledger, exact) ${spend.spentNanos} = $${spend.spentUsd}; overshoot ${overshoot} nano-USD ` +
        `(${((100 * overshoot) / LIMIT).toFixed(2)} %); in-flight bound ${CONCURRENCY} × ~${perRequest} = ${CONCURRENCY * perRequest}`,
    );
    // the reservation rule: a budget has room while spent + in flight < limit, so the spend
    // overshoots by at most the requests in flight when it filled (their cost, or more only if
    // they outgrew their estimates; with max_tokens set none can)
    expect(spend.spentNanos).toBeLessThanOrEqual(LIMIT + CONCURRENCY * perRequest);
    // and "used up" was said only once the ledger's spend alone reached the limit
    expect(spend.spentNanos).toBeGreaterThanOrEqual(LIMIT);
  });

  it('downgrades to the cheapest tier instead when the spent budget says so', async () => {
    budgetConfig.tenants[0].budgets = [{ id: 'daily', scope: 'tenant', window: 'daily', limitUsd: LIMIT_USD, action: 'downgrade' }];
    await stack.applyConfig(budgetConfig);
    const client = stack.openai();
    const o = await eventually(async () => {
      const got = await ask(client, 1_000, 'gpt-4o');
      expect(got.ok).toBe(true);
      return got;
    }, 10_000);
    // asked for gpt-4o, answered by the cheapest tier's model
    expect(o).toEqual({ ok: true, model: 'gpt-4o-mini' });
  });
});
