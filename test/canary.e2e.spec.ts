import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import type { Subscription } from '@nats-io/transport-node';
import { startSim, type Sim } from '@sluice/openai-sim';
import { eventually } from '@sluice/bus/testing';
import { Subjects, type SluiceEvent } from '@sluice/contracts';
import { defaultConfig, startE2eStack, type E2eStack } from './harness.js';

// Issue 13, item 3: a 20 % canary of gpt-4o-mini to a model whose only deployment is a simulator
// that fails every call. The split follows the user (the same user, the same variant), the guard
// rolls the canary back once its error rate is over the baseline's by the margin, the event says
// why, and afterwards every user (the canary's too) is answered by the baseline. That a user
// always gets the same variant is services/router/src/canary.unit.spec.ts's (here the rollback
// comes within about two seconds, sooner than a second round could tell).
let stack: E2eStack;
let broken: Sim;
let rolledBack: Subscription;
const rollbacks: Array<SluiceEvent<'canary.rolled_back'>> = [];
const USERS = Array.from({ length: 50 }, (_, i) => `canary-user-${i}`);

beforeAll(async () => {
  broken = await startSim({ port: 0 });
  broken.setFaults({ errorRate: 1 });
  const config = defaultConfig();
  config.deployments.broken = { baseUrl: broken.url, timeoutMs: 10_000, upstreamModel: 'gpt-4o' };
  config.models['gpt-4o-canary'] = { deployments: ['broken'], fallback: [], price: { inputPerMTok: 2.5, outputPerMTok: 10 } };
  config.invoker = { ...config.invoker, maxAttemptsPerDeployment: 1, baseBackoffMs: 5 };
  // the failures must not move the degrade level: this test is about the canary's guard
  config.degrader = { ...config.degrader, minSamples: 100_000 };
  // every request must reach the router (a semantic hit would answer a canary user as the baseline)
  for (const t of config.tenants) delete t.cache;
  config.canaries = [
    {
      id: 'mini-to-canary',
      match: { model: 'gpt-4o-mini' },
      baseline: 'stable',
      variants: [
        { name: 'stable', percent: 80 },
        { name: 'canary', percent: 20, model: 'gpt-4o-canary' },
      ],
      guard: { maxErrorRateDelta: 0.2, windowMs: 60_000, minRequests: 5 },
    },
  ];
  stack = await startE2eStack({ config });
  rolledBack = stack.nc.subscribe(Subjects.eventsOf('canary.rolled_back'), {
    callback: (_err, m) => void rollbacks.push(m.json<SluiceEvent<'canary.rolled_back'>>()),
  });
});
afterAll(async () => {
  rolledBack?.unsubscribe();
  await stack?.close();
  await broken?.close();
});

/** Every answer the test got: the ledger's per-variant counts must add up to these. */
const tally = { ok: 0, failed: 0 };

/** One question of `user`'s (each different: no cache); whether it was answered, and its request id. */
async function ask(user: string, n: number): Promise<{ ok: boolean; id: string | null }> {
  const body = { model: 'gpt-4o-mini', user, messages: [{ role: 'user' as const, content: `question ${n} of ${user}` }] };
  try {
    const { response } = await stack.openai().chat.completions.create(body).withResponse();
    tally.ok++;
    return { ok: true, id: response.headers.get('x-sluice-request-id') };
  } catch (e) {
    if (!(e instanceof OpenAI.APIError)) throw e;
    tally.failed++;
    return { ok: false, id: e.headers?.get('x-sluice-request-id') ?? null };
  }
}

describe('a canary with a guard', () => {
  const failedUsers = new Set<string>();

  it('splits by user, rolls the failing canary back once, saying why, and then sends everyone to the baseline', async () => {
    // round 1: every user once, 10 at a time
    const started = Date.now();
    const first = new Map<string, boolean>();
    for (let i = 0; i < USERS.length; i += 10) {
      const batch = USERS.slice(i, i + 10);
      const answers = await Promise.all(batch.map((u) => ask(u, 1)));
      batch.forEach((u, k) => first.set(u, answers[k]!.ok));
    }
    for (const [u, ok] of first) if (!ok) failedUsers.add(u);
    const share = failedUsers.size / USERS.length;
    console.log(`canary cohort: ${failedUsers.size} of ${USERS.length} users (${(share * 100).toFixed(0)} %, configured 20 %)`);
    expect(failedUsers.size).toBeGreaterThan(0);
    expect(failedUsers.size).toBeLessThan(USERS.length / 2);

    // the guard needs 5 of the canary's requests in its window; wait for its verdict
    const event = await eventually(() => rollbacks[0] ?? false, 30_000);
    console.log(`rolled back ${Date.now() - started} ms after the first request; ${event.reason}`);
    expect(event.data).toMatchObject({ canary: 'mini-to-canary', variant: 'canary', baseline: 'stable', errorRate: 1, baselineErrorRate: 0, windowMs: 60_000 });
    expect(event.data.requests).toBeGreaterThanOrEqual(5);
    expect(event.reason).toMatch(/^canary mini-to-canary rolled back: variant canary's error rate 100\.0 % \(\d+ requests\) exceeds baseline stable's 0\.0 %/);

    // after the rollback the canary's users are answered by the baseline, recorded as its variant
    const after = await eventually(async () => {
      const answers = await Promise.all([...failedUsers].map((u, i) => ask(u, 100 + i + Date.now())));
      if (answers.some((a) => !a.ok)) throw new Error('a canary user still failed');
      return answers;
    }, 10_000);
    await stack.ledgerCaughtUp();
    const row = await stack.ledger(`/v1/requests/${after[0]!.id}`);
    const routed = row.timeline.find((e: { type: string }) => e.type === 'chat.routed');
    expect(routed.reason).toContain('canary mini-to-canary was rolled back');
    expect(routed.reason).toContain('baseline stable');

    // the baseline's users were never affected, and stay so
    const stable = USERS.filter((u) => !failedUsers.has(u)).slice(0, 10);
    expect((await Promise.all(stable.map((u) => ask(u, 2)))).every((a) => a.ok)).toBe(true);

    // one rollback only, however many guard passes saw the failures
    await stack.ledgerCaughtUp();
    expect(rollbacks).toHaveLength(1);
  });

  it('reports requests, error rate, latency and cost per variant', async () => {
    await stack.ledgerCaughtUp();
    const report = await stack.ledger('/v1/variants?canary=mini-to-canary');
    const byName = Object.fromEntries(report.rows.map((r: { variant: string }) => [r.variant, r]));
    // every failure was the canary's, every answer the baseline's (the canary's users' too, after the rollback)
    expect(byName.canary).toMatchObject({ requests: tally.failed, completed: 0, failed: tally.failed, errorRate: 1, costUsd: 0 });
    expect(byName.stable).toMatchObject({ requests: tally.ok, completed: tally.ok, failed: 0, errorRate: 0 });
    expect(byName.stable.latencyMs.p50).toBeGreaterThan(0);
    expect(byName.stable.costUsd).toBeGreaterThan(0);
  });
});
