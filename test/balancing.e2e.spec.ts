import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSim, type Sim } from '@sluice/openai-sim';
import { eventually } from '@sluice/bus/testing';
import { defaultConfig, startE2eStack, startRecorder, type E2eStack, type Recorder } from './harness.js';

// Balancing across two deployments of one model (docs/balancing.md): weights 9:1, a deployment
// made slow losing its traffic, a failing one losing all of it once its circuit opens; and an
// Azure OpenAI deployment answering through the simulator's Azure paths.
let stack: E2eStack;
let east: Sim;
let west: Sim;
let azure: Sim;
let recorder: Recorder;

const MODEL = 'gpt-4o-mini';

beforeAll(async () => {
  [east, west, azure] = await Promise.all([startSim({ port: 0 }), startSim({ port: 0 }), startSim({ port: 0 })]);
  recorder = await startRecorder(azure.url.replace(/\/v1$/, '/'));
  const config = defaultConfig();
  config.deployments.east = { baseUrl: east.url, timeoutMs: 10_000, weight: 9 };
  config.deployments.west = { baseUrl: west.url, timeoutMs: 10_000, weight: 1 };
  config.deployments.azure = { baseUrl: recorder.url, kind: 'azure', apiKeyEnv: 'AZURE_E2E_KEY', apiVersion: '2024-10-21', timeoutMs: 10_000 };
  config.models[MODEL] = { ...config.models[MODEL], deployments: ['east', 'west'], balance: 'weighted' };
  config.models['gpt-4o'] = { ...config.models['gpt-4o'], deployments: ['azure'], fallback: [] };
  // every request an upstream call: no semantic lookups (embedding calls), unique prompts
  config.tenants[0].cache = { semantic: { enabled: false } };
  config.invoker = { ...config.invoker, maxAttemptsPerDeployment: 1, baseBackoffMs: 5, circuitFailureThreshold: 3, circuitOpenMs: 60_000 };
  // the degrader is exercised by its own tests; failures here must not move its level
  config.degrader = { ...config.degrader, minSamples: 100_000 };
  stack = await startE2eStack({ config, env: { AZURE_E2E_KEY: 'azure-e2e-key' } });
}, 120_000);
afterAll(async () => {
  await stack?.close();
  await Promise.all([east?.close(), west?.close(), azure?.close(), recorder?.close()]);
});

let asked = 0;
/** One chat request for MODEL with a prompt never asked before (no cache hit). */
async function ask(model = MODEL): Promise<void> {
  const n = asked++;
  const r = await stack.openai().chat.completions.create({ model, messages: [{ role: 'user', content: `balancing question ${n}: ${n * 7919}` }] });
  expect(r.choices[0]?.message.content?.length).toBeGreaterThan(0);
}

/** `total` requests, `concurrency` at a time. */
async function traffic(total: number, concurrency: number): Promise<void> {
  let left = total;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left-- > 0) await ask();
    }),
  );
}

const served = (s: Sim) => s.stats().requests;

describe('balancing across two deployments of one model', () => {
  it("puts the choice and its reason on the first attempt's timeline entry", async () => {
    const { response } = await stack
      .openai()
      .chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'which deployment answers me?' }] })
      .withResponse();
    const id = response.headers.get('x-sluice-request-id')!;
    // the invoker publishes a completion's last attempt and its chat.completed side by side: either may be projected first
    const attempted = await eventually(async () => {
      const r = await stack.ledger(`/v1/requests/${id}`);
      const a = r.timeline.find((e: { type: string }) => e.type === 'invoke.attempted');
      if (r.outcome !== 'completed' || !a) throw new Error('not yet');
      return a;
    }, 20_000);
    expect(attempted.reason).toMatch(new RegExp(`^${MODEL}@(east|west) chosen of east, west `));
    expect(attempted.reason).toContain('(p2c');
  });

  it('splits 9:1 weights about 9:1 over 200 requests', async () => {
    const [e0, w0] = [served(east), served(west)];
    await traffic(200, 8);
    const [e, w] = [served(east) - e0, served(west) - w0];
    console.log(`[balancing] 9:1 weights over 200 requests: east ${e}, west ${w} (${((100 * e) / (e + w)).toFixed(1)} % east)`);
    expect(e + w).toBe(200);
    // two draws by weight: east 81 % for sure, the 18 % mixed draws to the lower EWMA (load makes the busier one slower), less 3 sd of binomial(200)
    expect(e / 200).toBeGreaterThan(0.75);
    expect(w).toBeGreaterThan(0);
  });

  it('takes most traffic away from a deployment made slow, within seconds', async () => {
    // the heavy one slows: weight 9 no longer earns it traffic
    east.setFaults({ latencyMs: 1000 });
    try {
      await slowedEastLosesTraffic();
    } finally {
      // back to full speed even when the check failed: the next test reads east's latency too
      east.setFaults({ latencyMs: 0 });
    }
  }, 30_000);

  /** Four workers for 6 s against the slowed east, in 0.5 s windows: when its share falls and stays low. */
  async function slowedEastLosesTraffic(): Promise<void> {
    const started = Date.now();
    const windows: { at: number; east: number; west: number }[] = [];
    let last = { east: served(east), west: served(west) };
    const sampler = setInterval(() => {
      const now = { east: served(east), west: served(west) };
      windows.push({ at: Date.now() - started, east: now.east - last.east, west: now.west - last.west });
      last = now;
    }, 500);
    try {
      const until = started + 6000;
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          while (Date.now() < until) await ask();
        }),
      );
    } finally {
      clearInterval(sampler);
    }
    // lost: from the first half-second window on which every later one gives east at most 10 %
    const share = (w: { east: number; west: number }) => (w.east + w.west === 0 ? 0 : w.east / (w.east + w.west));
    // (a window with no answer at all, every worker waiting on the slow one, does not count as low;
    // windows after the 6 s of load only hold the workers' last requests, a handful that a stalled
    // machine can delay past it: one such window of 2/2 failed a run, so they are not judged)
    const loaded = windows.filter((w) => w.at <= 6000);
    const firstLow = loaded.findIndex((w, i) => w.east + w.west > 0 && loaded.slice(i).every((v) => share(v) <= 0.1));
    const tail = loaded.slice(firstLow);
    const tailShare =
      tail.reduce((s, w) => s + w.east, 0) /
      Math.max(
        1,
        tail.reduce((s, w) => s + w.east + w.west, 0),
      );
    console.log(
      `[balancing] east slowed to 1000 ms: its share fell to <= 10 % per 0.5 s window after ${firstLow < 0 ? 'never' : `${loaded[firstLow]!.at - 500} ms`}; ` +
        `share after that ${(100 * tailShare).toFixed(1)} %; east got ${windows.reduce((n, w) => n + w.east, 0)} of ${windows.reduce((n, w) => n + w.east + w.west, 0)} requests in 6 s; ` +
        `windows (east/west) ${windows.map((w) => `${w.east}/${w.west}`).join(' ')}`,
    );
    expect(firstLow).toBeGreaterThanOrEqual(0);
    expect(loaded[firstLow]!.at).toBeLessThanOrEqual(3000);
    expect(tailShare).toBeLessThan(0.1);
  }

  it('sends a failing deployment nothing once its circuit opens', async () => {
    west.setFaults({ errorRate: 1 });
    // every request is answered (west's failures fall back to east) while the circuit opens
    await eventually(async () => {
      const before = served(west);
      await traffic(30, 4);
      expect(served(west)).toBe(before);
    }, 30_000);
    const before = served(west);
    await traffic(60, 4);
    console.log(
      `[balancing] west failing: ${west.stats().errors} of its answers were 500s before its circuit opened; 60 requests after: ${served(west) - before} to west`,
    );
    expect(served(west)).toBe(before);
    expect(west.stats().errors).toBeGreaterThanOrEqual(3);
    west.setFaults({ errorRate: 0 });
  }, 60_000);
});

describe('an Azure OpenAI deployment', () => {
  it("answers through the simulator's Azure path, with api-version and the api-key header, whole and streamed", async () => {
    const whole = await stack
      .openai()
      .chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello azure' }] })
      .withResponse();
    expect(whole.response.headers.get('x-sluice-model')).toBe('gpt-4o');
    expect(whole.data.choices[0]?.message.content).toMatch(/^Echo: hello azure/);
    const stream = await stack
      .openai()
      .chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello azure, streamed' }], stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toMatch(/^Echo: hello azure/);
    // the simulator answers 401 without an api-key header and 400 without api-version: both were sent
    expect(recorder.calls.map((c) => c.path)).toEqual([
      '/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21',
      '/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21',
    ]);
    expect(azure.stats()).toMatchObject({ completions: 2, errors: 0 });
  });
});
