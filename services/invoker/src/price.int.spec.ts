import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTopology, putConfig } from '@sluice/bus';
import { eventually } from '@sluice/bus/testing';
import { only, startHarness, TENANT, type Harness } from './harness.js';

// The invoker records the price each answer is billed at on its chat.completed, from the config it
// invoked the request under (wired as main.ts wires it, a real nats-server and simulator): a price
// change in the control bucket applies to the next answers, never to one already recorded.

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ primary: {} }, { maxAttemptsPerDeployment: 1, concurrency: 4 });
});
afterAll(async () => {
  await h?.stop();
});

const A = { model: 'gpt-4o-mini', deployment: 'primary' };
const priceOf = async () => {
  const out = await h.invoke([A]);
  return only(out.events, 'chat.completed')[0]!.data.price;
};

describe('the invoker records the price of each answer', () => {
  it("records the config's price, then the new one once the config changes", async () => {
    // the harness's config prices gpt-4o-mini at 0.15 / 0.6 USD per million tokens
    expect(await priceOf()).toEqual({ inputPerMTok: 0.15, outputPerMTok: 0.6, source: 'config' });
    const buckets = await ensureTopology(h.bus);
    await putConfig(buckets, {
      tenants: [{ id: TENANT, keySha256: ['0'.repeat(64)] }],
      limits: {
        global: { requestsPerMinute: 1e6, tokensPerMinute: 1e9 },
        tenantDefault: { requestsPerMinute: 1e6, tokensPerMinute: 1e9 },
        userDefault: { requestsPerMinute: 1e6, tokensPerMinute: 1e9 },
      },
      deployments: { primary: { baseUrl: h.sims.primary!.url, timeoutMs: 5000 } },
      models: { 'gpt-4o-mini': { deployments: ['primary'], fallback: [], price: { inputPerMTok: 0.3, outputPerMTok: 1.2 } } },
      tiers: [{ name: 'small', model: 'gpt-4o-mini', maxComplexity: 1 }],
      router: {},
      invoker: { maxAttemptsPerDeployment: 1, concurrency: 4 },
      cache: {},
      degrader: {},
      ingress: {},
    });
    // the invoker watches the control bucket: the next requests are priced at the new price
    const after = await eventually(async () => {
      const p = await priceOf();
      return p?.inputPerMTok === 0.3 && p;
    }, 10_000);
    expect(after).toEqual({ inputPerMTok: 0.3, outputPerMTok: 1.2, source: 'config' });
  }, 30_000);
});
