import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Subjects, Topology, type EventType } from '@sluice/contracts';
import { eventually } from '@sluice/bus/testing';
import { defaultConfig, sleep, startE2eStack, type E2eStack } from './harness.js';
import { linesOf, uploadBatchFile, type OutputLine } from './batch-kit.js';

// The upstream route of a batch (issue 14, item 2; docs/batches.md, The upstream's Batch API),
// with the real openai SDK against the whole stack: the deployment says `batchApi`, so the
// invoker records the batch's lines and sends them to the simulator's own Files and Batch APIs
// instead of calling /chat/completions, maps the output back by custom_id, and the batch completes
// as through the lane; then the same across a SIGKILL of the invoker while its upstream batch runs.
let stack: E2eStack;
let client: OpenAI;
let upstream: OpenAI;
let jsm: JetStreamManager;

beforeAll(async () => {
  const config = defaultConfig();
  for (const t of config.tenants) delete t.cache;
  config.deployments.primary.batchApi = true;
  // the whole batch in flight at once: its lines are gathered into one upstream batch
  config.batches = { maxInFlight: 1000, pollMs: 50, upstream: { gatherMs: 300, pollMs: 100, maxPollMs: 500 } };
  stack = await startE2eStack({ config, sim: { latencyMs: 5, batchDelayMs: 300 } });
  client = stack.openai();
  upstream = new OpenAI({ baseURL: stack.sim!.url, apiKey: 'sk-none' });
  jsm = await jetstreamManager(stack.nc);
});
afterAll(async () => {
  await stack?.close();
});

/** Line i asks a question of (i % 40) + 1 words, so its prompt tokens tell which line an answer is for. */
const question = (id: string, i: number) => ({
  custom_id: id,
  method: 'POST',
  url: '/v1/chat/completions',
  body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `${'apple '.repeat((i % 40) + 1)}${id} ${Math.random()}` }], max_tokens: 8 },
});

async function run(lines: unknown[], during?: (id: string) => Promise<void>): Promise<{ batch: OpenAI.Batch; out: OutputLine[]; errors: OutputLine[] }> {
  const created = await client.batches.create({
    input_file_id: await uploadBatchFile(client, lines),
    endpoint: '/v1/chat/completions',
    completion_window: '24h',
  });
  await during?.(created.id);
  let batch = created;
  const end = Date.now() + 40_000;
  while (!['completed', 'failed', 'expired', 'cancelled'].includes(batch.status)) {
    if (Date.now() > end) throw new Error(`batch ${batch.id} still ${batch.status}`);
    await sleep(100);
    batch = await client.batches.retrieve(batch.id);
  }
  return { batch, out: await linesOf(client, batch.output_file_id), errors: await linesOf(client, batch.error_file_id) };
}

/** How many events of this type the stream holds for the dev tenant. */
async function count(type: EventType): Promise<number> {
  const info = await jsm.streams.info(Topology.stream.name, { subjects_filter: Subjects.event(type, 'dev') });
  return Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
}

/** Every line's prompt tokens agree with its custom_id's question length (i % 40 + 1 words): each answer is its own line's. */
function expectMappedBack(out: OutputLine[]): void {
  const tokensByLength = new Map<number, Set<number>>();
  for (const l of out) {
    const i = Number(l.custom_id.split('-')[1]);
    const k = i % 40;
    const set = tokensByLength.get(k) ?? new Set<number>();
    set.add(l.response!.body.usage.prompt_tokens as number);
    tokensByLength.set(k, set);
    expect(l.response!.body.id).toBe(`chatcmpl-${l.response!.request_id}`);
  }
  const ks = [...tokensByLength.keys()].sort((a, b) => a - b);
  // each question length has its own token count (the custom_id's random suffix is a few tokens at most), growing with it
  const mins = ks.map((k) => Math.min(...tokensByLength.get(k)!));
  const maxs = ks.map((k) => Math.max(...tokensByLength.get(k)!));
  for (let j = 1; j < ks.length; j++) expect(mins[j]!).toBeGreaterThan(maxs[j - 1]! - 3);
  expect(mins.at(-1)! - mins[0]!).toBeGreaterThan(30);
}

describe('a batch through the upstream Batch API', () => {
  it('sends 180 valid lines of a 200-line batch to the deployment Batch API, none to /chat/completions; 20 invalid lines end at ingress', async () => {
    const before = stack.sim!.stats();
    const lines = Array.from({ length: 200 }, (_, i) =>
      i % 10 === 3
        ? { custom_id: `bad-${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-4o-mini', max_tokens: 8 } }
        : question(`q-${i}`, i),
    );
    const submitted = await count('upstream_batch.submitted');
    const { batch, out, errors } = await run(lines);
    expect(batch.status).toBe('completed');
    expect(batch.request_counts).toEqual({ total: 200, completed: 180, failed: 20 });
    expect(out.map((l) => l.custom_id)).toEqual(lines.filter((l) => l.custom_id.startsWith('q-')).map((l) => l.custom_id));
    expect(errors.map((l) => l.custom_id).every((id) => id.startsWith('bad-'))).toBe(true);
    expectMappedBack(out);

    const after = stack.sim!.stats();
    expect(after.batchLines! - before.batchLines!).toBe(180);
    expect(after.requests - before.requests).toBe(0);
    expect(await count('upstream_batch.submitted')).toBeGreaterThan(submitted);
    expect(await count('upstream_batch.queued')).toBeGreaterThanOrEqual(180);

    // billed at the batch price (half the model's), as through the lane
    await stack.ledgerCaughtUp();
    const report = await stack.ledger<any>(`/v1/requests/${out[0]!.response!.request_id}`);
    expect(report).toMatchObject({ priority: 'batch', outcome: 'completed' });
    const price = defaultConfig().models[report.model].price;
    expect(report.costUsd).toBeCloseTo(((report.inputTokens * price.inputPerMTok + report.outputTokens * price.outputPerMTok) / 1e6) * 0.5, 12);
    expect(report.costUsd).toBeGreaterThan(0);
  });

  it('runs on across a SIGKILL of the invoker while its upstream batch runs: every line answered, each sent upstream once', async () => {
    stack.sim!.setFaults({ batchDelayMs: 2500 });
    try {
      const before = stack.sim!.stats();
      const upstreamBefore = (await upstream.batches.list({ limit: 100 })).data.length;
      const submitted = await count('upstream_batch.submitted');
      const lines = Array.from({ length: 120 }, (_, i) => question(`k-${i}`, i));
      const { batch, out } = await run(lines, async () => {
        await eventually(async () => expect(await count('upstream_batch.submitted')).toBeGreaterThan(submitted), 20_000);
        const s = stack.services.get('invoker')!;
        const restarts = s.restarts;
        s.kill('SIGKILL');
        await eventually(() => s.restarts !== restarts, 30_000, { what: 'the invoker to be restarted', everyMs: 5 });
        await s.whenReady(60_000);
      });
      expect(batch.status).toBe('completed');
      expect(batch.request_counts).toEqual({ total: 120, completed: 120, failed: 0 });
      expect(new Set(out.map((l) => l.custom_id)).size).toBe(120);
      expectMappedBack(out);
      const after = stack.sim!.stats();
      expect(after.batchLines! - before.batchLines!).toBe(120);
      expect(after.requests - before.requests).toBe(0);
      const created = (await upstream.batches.list({ limit: 100 })).data.length - upstreamBefore;
      expect(created).toBe((await count('upstream_batch.submitted')) - submitted);
    } finally {
      stack.sim!.setFaults({ batchDelayMs: 300 });
    }
  });
});
