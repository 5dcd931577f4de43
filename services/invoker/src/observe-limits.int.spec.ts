import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSim, type Sim } from '@sluice/openai-sim';
import { streamReader } from './answer.js';
import { observationOf, type CallResult } from './observe-limits.js';
import { outgoing } from './outgoing.js';
import { classifyError } from './retry.js';
import { callUpstream, ClientPool } from './upstream.js';

// What the invoker reads of the simulator's own limits, over real HTTP, on each kind of call:
// whole and streamed answers carry the six x-ratelimit-* headers, a 429 carries them with its wait.
let sim: Sim;
const pool = new ClientPool({});

beforeAll(async () => {
  // 60/min, bursts of 3
  sim = await startSim({ port: 0, requestsPerMinute: 60, tokensPerMinute: 100_000, burstSeconds: 3 });
});
afterAll(async () => {
  await sim?.close();
});

async function call(stream: boolean): Promise<CallResult> {
  const deployment = { baseUrl: sim.url, timeoutMs: 5000 };
  const request = outgoing(
    'chat.completions',
    { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], ...(stream ? { stream } : {}) },
    { model: 'gpt-4o-mini', stream },
  );
  try {
    return await callUpstream({
      client: pool.get('sim', deployment),
      post: pool.post,
      endpoint: 'chat.completions',
      requestId: 'r1',
      request,
      idleTimeoutMs: 5000,
      deadline: Date.now() + 5000,
      now: Date.now,
      ...(stream ? { reader: streamReader('chat.completions', 'r1', request.addedUsage), forward: () => undefined } : {}),
    });
  } catch (e) {
    return classifyError(e, Date.now());
  }
}

describe("the simulator's limits as the invoker reads them", () => {
  it('reads them off a whole answer, a streamed one, and the 429 once the burst is spent', async () => {
    const whole = await call(false);
    expect(whole.status).toBe(200);
    expect(whole.limits).toMatchObject({ limitRequests: 60, remainingRequests: 2, limitTokens: 100_000 });
    expect(whole.limits?.resetRequestsMs).toBeGreaterThan(0);
    expect(whole.limits?.resetRequestsMs).toBeLessThanOrEqual(1000);

    const streamed = await call(true);
    expect(streamed.status).toBe(200);
    expect(streamed.limits).toMatchObject({ limitRequests: 60 });
    expect(streamed.limits?.remainingRequests).toBeLessThanOrEqual(2);

    // the burst of 3 is spent within a call or two (it refills one a second)
    let refused = await call(false);
    for (let i = 0; i < 5 && refused.status !== 429; i++) refused = await call(false);
    expect(refused.status).toBe(429);
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(refused.limits).toMatchObject({ limitRequests: 60, remainingRequests: 0 });

    const e = observationOf('sim', 'r1', refused, Date.now());
    expect(e.data).toMatchObject({ deployment: 'sim', status: 429, throttled: true, limitRequests: 60, remainingRequests: 0 });
    expect(sim.stats().throttled).toBe(1);
  });
});
