import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { jetstreamManager } from '@nats-io/jetstream';
import { Subjects, Topology } from '@sluice/contracts';
import { eventually } from '@sluice/bus/testing';
import { defaultConfig, sleep, startE2eStack, type E2eStack } from './harness.js';
import { linesOf, uploadBatchFile } from './batch-kit.js';

// The Batch API through Sluice (issue 14, items 1, 2 and 5; docs/batches.md), with the real
// openai SDK against the whole stack: each line goes through ingress's checks and the pipeline
// in the batch lane, invalid requests come back as error lines, an invalid file fails the batch,
// a cancel stops it midway, and a batch runs on across a SIGKILL of the invoker and of ingress
// with every line served once.
let stack: E2eStack;
let client: OpenAI;

beforeAll(async () => {
  const config = defaultConfig();
  // every line is a distinct question: no cache of any kind may answer one (the served count is compared)
  for (const t of config.tenants) delete t.cache;
  config.batches = { maxInFlight: 16, pollMs: 50 };
  // lines with a user are held to 120 a minute (a bucket of 120, 2 a second): the throttle test's
  config.limits = { ...config.limits, userDefault: { requestsPerMinute: 120, tokensPerMinute: 100_000_000 } };
  stack = await startE2eStack({ config, sim: { latencyMs: 5 } });
  client = stack.openai();
});
afterAll(async () => {
  await stack?.close();
});

type Status = OpenAI.Batch['status'];

const chatLine = (id: string, body: Record<string, unknown>) => ({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body });
const question = (id: string, n: number) =>
  chatLine(id, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `batch ${id} question ${n} ${Math.random()}` }], max_tokens: 8 });

const upload = (lines: unknown[]) => uploadBatchFile(client, lines);

async function create(lines: unknown[], metadata?: Record<string, string>): Promise<OpenAI.Batch> {
  return client.batches.create({
    input_file_id: await upload(lines),
    endpoint: '/v1/chat/completions',
    completion_window: '24h',
    ...(metadata ? { metadata } : {}),
  });
}

async function poll(
  id: string,
  until: Status[],
  timeoutMs = 30_000,
  onPoll: (b: OpenAI.Batch) => void = () => undefined,
): Promise<{ batch: OpenAI.Batch; seen: Status[] }> {
  const seen: Status[] = [];
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const batch = await retrieve(id);
    onPoll(batch);
    if (seen.at(-1) !== batch.status) seen.push(batch.status);
    if (until.includes(batch.status)) return { batch, seen };
    await sleep(50);
  }
  throw new Error(`batch ${id} never reached ${until.join('/')}; saw ${seen.join(' -> ')}`);
}

/** The batch now; through an ingress restart, the first answer after it. */
async function retrieve(id: string): Promise<OpenAI.Batch> {
  for (;;) {
    try {
      return await client.batches.retrieve(id);
    } catch (e) {
      if (!(e instanceof OpenAI.APIConnectionError)) throw e;
      await sleep(100);
    }
  }
}

describe('the Batch API', () => {
  it('runs 220 lines through the pipeline: 200 answers in the output file, 20 invalid requests as 400s in the error file', async () => {
    const served = stack.sim!.stats().completions;
    const lines = Array.from({ length: 220 }, (_, i) => (i % 11 === 5 ? chatLine(`bad-${i}`, { model: 'gpt-4o-mini', max_tokens: 8 }) : question(`q-${i}`, i)));
    const created = await create(lines, { job: 'nightly' });
    expect(created).toMatchObject({
      object: 'batch',
      status: 'validating',
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
      metadata: { job: 'nightly' },
    });
    expect(created.id).toMatch(/^batch_[a-z2-7]{24}$/);
    expect(created.expires_at).toBe(created.created_at + 86_400);

    const { batch, seen } = await poll(created.id, ['completed', 'failed']);
    expect(seen).toContain('in_progress');
    expect(batch.status).toBe('completed');
    expect(batch.request_counts).toEqual({ total: 220, completed: 200, failed: 20 });
    expect(batch.model).toBe('gpt-4o-mini');
    for (const k of ['in_progress_at', 'finalizing_at', 'completed_at'] as const) expect(batch[k]).toBeGreaterThanOrEqual(batch.created_at);

    const out = await linesOf(client, batch.output_file_id);
    const errors = await linesOf(client, batch.error_file_id);
    expect(out.map((l) => l.custom_id)).toEqual(lines.filter((l) => l.custom_id.startsWith('q-')).map((l) => l.custom_id));
    for (const l of out) {
      expect(l).toMatchObject({ id: expect.stringMatching(/^batch_req_/) as string, error: null, response: { status_code: 200 } });
      expect(l.response!.request_id).toMatch(/^req_[a-z2-7]{20}$/);
      expect(l.response!.body).toMatchObject({ object: 'chat.completion' });
    }
    expect(errors).toHaveLength(20);
    for (const l of errors) {
      expect(l.custom_id).toMatch(/^bad-/);
      expect(l.response).toMatchObject({ status_code: 400, body: { error: { code: 'invalid_request', param: 'messages' } } });
    }
    const usage = out.reduce((s, l) => s + (l.response!.body.usage.prompt_tokens as number) + (l.response!.body.usage.completion_tokens as number), 0);
    expect(batch.usage?.total_tokens).toBe(usage);
    // each valid line was served upstream exactly once
    expect(stack.sim!.stats().completions - served).toBe(200);
    expect(await client.files.retrieve(batch.output_file_id!)).toMatchObject({ purpose: 'batch_output', filename: `${batch.id}_output.jsonl` });

    // listed newest first, and billed at the batch price (half the model's)
    const page = await client.batches.list({ limit: 100 });
    expect(page.data.map((b) => b.id)).toContain(batch.id);
    await stack.ledgerCaughtUp();
    const first = out[0]!.response!.request_id;
    const report = await stack.ledger<any>(`/v1/requests/${first}`);
    expect(report).toMatchObject({ priority: 'batch', outcome: 'completed' });
    const price = defaultConfig().models[report.model].price;
    expect(report.costUsd).toBeCloseTo(((report.inputTokens * price.inputPerMTok + report.outputTokens * price.outputPerMTok) / 1e6) * 0.5, 12);
    expect(report.costUsd).toBeGreaterThan(0);
  });

  it('runs the embeddings and responses endpoints too', async () => {
    for (const [endpoint, body] of [
      ['/v1/embeddings', (i: number) => ({ model: 'text-embedding-3-small', input: `embed ${i} ${Math.random()}` })],
      ['/v1/responses', (i: number) => ({ model: 'gpt-4o-mini', input: `respond ${i} ${Math.random()}`, max_output_tokens: 16 })],
    ] as const) {
      const file = await upload(Array.from({ length: 5 }, (_, i) => ({ custom_id: `e-${i}`, method: 'POST', url: endpoint, body: body(i) })));
      const created = await client.batches.create({ input_file_id: file, endpoint, completion_window: '24h' });
      const { batch } = await poll(created.id, ['completed', 'failed']);
      expect(batch.request_counts).toEqual({ total: 5, completed: 5, failed: 0 });
      const out = await linesOf(client, batch.output_file_id);
      expect(out.map((l) => l.response!.body.object)).toEqual(Array(5).fill(endpoint === '/v1/embeddings' ? 'list' : 'response'));
    }
  });

  it('fails a batch whose input file is invalid, with OpenAI per-line errors, and runs none of it', async () => {
    const served = stack.sim!.stats().completions;
    const created = await create([
      question('a', 1),
      '{not json',
      question('a', 2),
      { ...question('c', 3), url: '/v1/embeddings' },
      { ...question('d', 4), method: 'GET' },
      { custom_id: 'e', method: 'POST', url: '/v1/chat/completions' },
    ]);
    const { batch } = await poll(created.id, ['failed', 'completed']);
    expect(batch.status).toBe('failed');
    expect(batch.failed_at).toBeGreaterThanOrEqual(batch.created_at);
    expect(batch.errors?.data?.map((e) => [e.line, e.code, e.param])).toEqual([
      [2, 'invalid_json_line', null],
      [3, 'duplicate_custom_id', 'custom_id'],
      [4, 'url_mismatch', 'url'],
      [5, 'invalid_value', 'method'],
      [6, 'missing_required_parameter', 'body'],
    ]);
    expect(stack.sim!.stats().completions).toBe(served);
  });

  it('sends a line the limiter throttled again after its Retry-After: a batch over its user rate completes, none failed', async () => {
    const jsm = await jetstreamManager(stack.nc);
    const throttled = async () =>
      Object.values((await jsm.streams.info(Topology.stream.name, { subjects_filter: Subjects.event('chat.throttled', 'dev') })).state.subjects ?? {}).reduce(
        (a, b) => a + b,
        0,
      );
    const before = await throttled();
    const served = stack.sim!.stats().completions;
    const lines = Array.from({ length: 130 }, (_, i) => {
      const l = question(`u-${i}`, i);
      return { ...l, body: { ...l.body, user: 'batch-user' } };
    });
    const created = await create(lines);
    const { batch } = await poll(created.id, ['completed', 'failed', 'expired'], 40_000);
    expect(batch.request_counts).toEqual({ total: 130, completed: 130, failed: 0 });
    expect(await throttled()).toBeGreaterThan(before);
    expect(stack.sim!.stats().completions - served).toBe(130);
    // the output names the attempt that answered
    const out = await linesOf(client, batch.output_file_id);
    expect(new Set(out.map((l) => l.response!.request_id)).size).toBe(130);
  });

  it('refuses a bad request to create one with OpenAI-shaped 400s and 404s', async () => {
    const id = await upload([question('x', 1)]);
    const refused = async (p: Promise<unknown>) =>
      p.then(
        () => undefined,
        (e: unknown) => e as InstanceType<typeof OpenAI.APIError>,
      );
    const window = await refused(client.batches.create({ input_file_id: id, endpoint: '/v1/chat/completions', completion_window: '1h' as '24h' }));
    expect(window).toMatchObject({ status: 400, param: 'completion_window' });
    const endpoint = await refused(client.batches.create({ input_file_id: id, endpoint: '/v1/completions', completion_window: '24h' }));
    expect(endpoint).toMatchObject({ status: 400, param: 'endpoint' });
    const metadata = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']));
    expect(await refused(client.batches.create({ input_file_id: id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata }))).toMatchObject({
      status: 400,
      param: 'metadata',
    });
    const missing = await refused(
      client.batches.create({ input_file_id: 'file-aaaaaaaaaaaaaaaaaaaaaaaa', endpoint: '/v1/chat/completions', completion_window: '24h' }),
    );
    expect(missing).toMatchObject({ status: 404, code: 'file_not_found', param: 'input_file_id' });
    expect(await refused(client.batches.retrieve('batch_aaaaaaaaaaaaaaaaaaaaaaaa'))).toMatchObject({ status: 404, code: 'batch_not_found' });
  });

  it('cancels a batch midway: the lines in flight end, the rest are batch_cancelled, and nothing runs after', async () => {
    stack.sim!.setFaults({ latencyMs: 150 });
    try {
      const lines = Array.from({ length: 300 }, (_, i) => question(`c-${i}`, i));
      const created = await create(lines);
      await poll(created.id, ['in_progress']);
      await eventually(async () => expect((await retrieve(created.id)).request_counts?.completed).toBeGreaterThan(20), 20_000);
      const cancelling = await client.batches.cancel(created.id);
      expect(cancelling.status).toBe('cancelling');
      const { batch } = await poll(created.id, ['cancelled']);
      const counts = batch.request_counts!;
      expect(counts.total).toBe(300);
      expect(counts.completed + counts.failed).toBe(300);
      expect(counts.completed).toBeGreaterThan(20);
      expect(counts.completed).toBeLessThan(300);
      const out = await linesOf(client, batch.output_file_id);
      const errors = await linesOf(client, batch.error_file_id);
      expect(out).toHaveLength(counts.completed);
      expect(errors).toHaveLength(counts.failed);
      for (const l of errors) expect(l).toMatchObject({ response: null, error: { code: 'batch_cancelled' } });
      expect(batch.cancelled_at).toBeGreaterThanOrEqual(batch.cancelling_at!);
      // nothing is submitted after the cancel: the served count stays
      const served = stack.sim!.stats().completions;
      await sleep(500);
      expect(stack.sim!.stats().completions).toBe(served);
      await expect(client.batches.cancel(created.id)).resolves.toMatchObject({ status: 'cancelled' });
    } finally {
      stack.sim!.setFaults({ latencyMs: 5 });
    }
  });

  it('runs on across a SIGKILL of the invoker, limiter, cache, router and ingress: every line answered, none served twice', async () => {
    stack.sim!.setFaults({ latencyMs: 40 });
    try {
      const served = stack.sim!.stats().completions;
      const lines = Array.from({ length: 400 }, (_, i) => question(`k-${i}`, i));
      const created = await create(lines);
      await eventually(async () => expect((await retrieve(created.id)).request_counts?.completed).toBeGreaterThan(40), 20_000);
      await killAndAwaitRestart('invoker');
      await eventually(async () => expect((await retrieve(created.id)).request_counts?.completed).toBeGreaterThan(100), 30_000);
      for (const name of ['limiter', 'cache', 'router'] as const) await killAndAwaitRestart(name);
      await eventually(async () => expect((await retrieve(created.id)).request_counts?.completed).toBeGreaterThan(160), 30_000);
      await killAndAwaitRestart('ingress');
      const { batch } = await poll(created.id, ['completed', 'failed', 'expired'], 45_000);
      expect(batch.status).toBe('completed');
      expect(batch.request_counts).toEqual({ total: 400, completed: 400, failed: 0 });
      const out = await linesOf(client, batch.output_file_id);
      expect(new Set(out.map((l) => l.custom_id)).size).toBe(400);
      // the upstream served each line once: a call repeated after the kill carried the same idempotency key
      expect(stack.sim!.stats().completions - served).toBe(400);
    } finally {
      stack.sim!.setFaults({ latencyMs: 5 });
    }
  });
});

async function killAndAwaitRestart(name: 'invoker' | 'limiter' | 'cache' | 'router' | 'ingress'): Promise<void> {
  const s = stack.services.get(name)!;
  const before = s.restarts;
  s.kill('SIGKILL');
  await eventually(() => s.restarts !== before, 30_000, { what: `${name} to be restarted`, everyMs: 5 });
  await s.whenReady(60_000);
}
