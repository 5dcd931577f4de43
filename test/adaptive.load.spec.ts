import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import type { SimStats } from '@sluice/openai-sim';
import { defaultConfig, sleep, startE2eStack, type E2eStack } from './harness.js';

// The global limit learns from the upstream (issue 11, item 6; docs/adaptive-limits.md). The
// simulator allows 120 requests/min (2 a second, bursts of 4); the gateway's own global limit is
// 600,000/min. Sustained load at three times the simulator's rate meets its 429s while adaptation
// is off, and hardly any once it is on: the gateway throttles first.
const SIM_RPM = 120;
const LOAD_RPS = 6;
let stack: E2eStack;
let config: Record<string, any>;

beforeAll(async () => {
  config = defaultConfig();
  config.limits.adaptive = { enabled: false };
  // one call per request, so each 429 is one request's; 429s would otherwise open the circuit
  // (and stop the calls the test counts) and the degrader would shed
  config.invoker = { ...config.invoker, maxAttemptsPerDeployment: 1, circuitFailureThreshold: 1_000_000 };
  config.degrader = { ...config.degrader, minSamples: 100_000 };
  // the simulator's share of 429s is per chat call: the semantic cache's embedding calls would
  // share its rate limit and its request count, so the dev tenant's is off here
  for (const t of config.tenants) delete t.cache;
  stack = await startE2eStack({ config, sim: { requestsPerMinute: SIM_RPM, burstSeconds: 2 } });
});
afterAll(async () => {
  await stack?.close();
});

interface Tally {
  ok: number;
  /** Refused by Sluice's own global layer (never reached the upstream). */
  gateway: number;
  /** The upstream's 429, passed on. */
  upstream: number;
  other: number;
}

/** Sends `rps` unique requests a second for `ms` (not waiting for answers to send the next); resolves when all are answered. */
async function load(tag: string, rps: number, ms: number): Promise<Tally> {
  const client = stack.openai();
  const tally: Tally = { ok: 0, gateway: 0, upstream: 0, other: 0 };
  const calls: Array<Promise<void>> = [];
  const start = Date.now();
  for (let i = 0; i * (1000 / rps) < ms; i++) {
    await sleep(start + i * (1000 / rps) - Date.now());
    const body = { model: 'gpt-4o-mini', max_tokens: 8, messages: [{ role: 'user' as const, content: `${tag} ${i}: count to three` }] };
    calls.push(
      client.chat.completions.create(body).then(
        () => void tally.ok++,
        (e: unknown) => {
          if (!(e instanceof OpenAI.RateLimitError)) tally.other++;
          else if (/global requests\/min/.test(e.message)) tally.gateway++;
          else tally.upstream++;
        },
      ),
    );
  }
  await Promise.all(calls);
  return tally;
}

/** The simulator's 429s per request it received between two snapshots. */
function throttledShare(from: SimStats, to: SimStats): { requests: number; throttled: number; completions: number; share: number } {
  const requests = to.requests - from.requests;
  const throttled = to.throttled - from.throttled;
  return { requests, throttled, completions: to.completions - from.completions, share: requests === 0 ? 0 : throttled / requests };
}

describe('the global limit learns from the upstream', () => {
  it("keeps sustained load at 3x the simulator's rate from meeting its 429s", async () => {
    const sim = stack.sim!;
    await stack.openai().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'warm up' }] });

    // before: adaptation off, the gateway passes everything on
    const s0 = sim.stats();
    const offTally = await load('off', LOAD_RPS, 10_000);
    const s1 = sim.stats();

    // after: on; the first 4 s are the adaptation, the next 14 s what it settles to
    await stack.applyConfig({ ...config, limits: { ...config.limits, adaptive: { enabled: true } } });
    const on = load('on', LOAD_RPS, 18_000);
    await sleep(4000);
    const s2 = sim.stats();
    const onTally = await on;
    const s3 = sim.stats();

    const before = throttledShare(s0, s1);
    const adapting = throttledShare(s1, s2);
    const after = throttledShare(s2, s3);
    const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
    console.log(
      [
        `simulator at ${SIM_RPM} requests/min (bursts of 4), load ${LOAD_RPS} requests/s:`,
        `  adaptation off (10 s):       ${before.throttled} of ${before.requests} upstream calls answered 429 = ${pct(before.share)}; clients: ${JSON.stringify(offTally)}`,
        `  adaptation on, first 4 s:    ${adapting.throttled} of ${adapting.requests} = ${pct(adapting.share)}`,
        `  adaptation on, next ~14 s:   ${after.throttled} of ${after.requests} upstream calls answered 429 = ${pct(after.share)}; completions ${after.completions}`,
        `  clients while on (18 s):     ${JSON.stringify(onTally)}`,
      ].join('\n'),
    );

    // the simulator was saturated without adaptation...
    expect(before.share).toBeGreaterThan(0.3);
    expect(offTally.gateway).toBe(0);
    // ...and with it the gateway throttles instead: the upstream's 429s fall to a fifth or less
    expect(after.share).toBeLessThan(before.share * 0.2);
    expect(onTally.gateway).toBeGreaterThan(0);
    // while the upstream is still kept busy: after one or two back-offs (84 or 59 of its 120/min)
    // it serves 1-1.4 requests/s; a quarter of its 2/s is the floor of this check
    expect(after.completions).toBeGreaterThanOrEqual(7);
  });
});
