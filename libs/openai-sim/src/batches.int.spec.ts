import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI from 'openai';
import { toFile } from 'openai/uploads';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Sim, startSim } from './mod.js';

let sim: Sim;
let client: OpenAI;
let admin: string;

beforeAll(async () => {
  sim = await startSim();
  client = new OpenAI({ baseURL: sim.url, apiKey: 'x', maxRetries: 0 });
  admin = sim.url.replace(/\/v1$/, '/admin');
});
afterAll(() => sim.close());
beforeEach(() => {
  sim.reset();
  sim.setFaults({ batchDelayMs: 0, batchWindowMs: 86_400_000 });
});

type Endpoint = OpenAI.BatchCreateParams['endpoint'];
type Status = OpenAI.Batch['status'];
/** A line of an output or error file, as OpenAI documents it. */
interface OutputLine {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string; body: Record<string, unknown> } | null;
  error: { code: string; message: string } | null;
}

const chat = (id: string, content: string, model = 'gpt-4o-mini') => ({
  custom_id: id,
  method: 'POST',
  url: '/v1/chat/completions',
  body: { model, messages: [{ role: 'user', content }] },
});

async function uploadLines(lines: unknown[]): Promise<string> {
  const jsonl = lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n';
  return (await client.files.create({ file: await toFile(Buffer.from(jsonl), 'input.jsonl'), purpose: 'batch' })).id;
}

async function createBatch(lines: unknown[], endpoint: Endpoint = '/v1/chat/completions', metadata?: Record<string, string>): Promise<OpenAI.Batch> {
  return client.batches.create({ input_file_id: await uploadLines(lines), endpoint, completion_window: '24h', ...(metadata ? { metadata } : {}) });
}

/** Polls until the batch reaches one of `until`; returns it and every status seen on the way. */
async function poll(id: string, until: Status[]): Promise<{ batch: OpenAI.Batch; seen: Status[] }> {
  const seen: Status[] = [];
  for (let i = 0; i < 1000; i++) {
    const batch = await client.batches.retrieve(id);
    if (seen.at(-1) !== batch.status) seen.push(batch.status);
    if (until.includes(batch.status)) return { batch, seen };
    await sleep(3);
  }
  throw new Error(`batch ${id} never reached ${until.join('/')}; saw ${seen.join(' -> ')}`);
}

async function linesOf(fileId: string | null | undefined): Promise<OutputLine[]> {
  if (fileId === null || fileId === undefined) return [];
  const text = await (await client.files.content(fileId)).text();
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as OutputLine);
}

describe('POST /v1/batches', () => {
  it('runs chat lines through validating, in_progress, finalizing to completed, each line once', async () => {
    sim.setFaults({ batchDelayMs: 60 });
    const created = await createBatch([chat('one', 'Hello there'), chat('two', 'What is two plus two?'), chat('three', 'Bye')], '/v1/chat/completions', {
      job: 'nightly',
    });
    expect(created).toMatchObject({
      object: 'batch',
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
      status: 'validating',
      errors: null,
      output_file_id: null,
      error_file_id: null,
      in_progress_at: null,
      completed_at: null,
      request_counts: { total: 0, completed: 0, failed: 0 },
      metadata: { job: 'nightly' },
    });
    expect(created.id).toMatch(/^batch_/);
    expect(created.expires_at).toBe(created.created_at + 86_400);

    const { batch, seen } = await poll(created.id, ['completed']);
    expect(seen).toContain('in_progress');
    expect(seen.indexOf('in_progress')).toBeLessThan(seen.indexOf('completed'));
    expect(batch.request_counts).toEqual({ total: 3, completed: 3, failed: 0 });
    expect(batch.model).toBe('gpt-4o-mini');
    for (const k of ['in_progress_at', 'finalizing_at', 'completed_at'] as const) expect(batch[k]).toBeGreaterThanOrEqual(batch.created_at);
    expect(batch).toMatchObject({ failed_at: null, expired_at: null, cancelling_at: null, cancelled_at: null, error_file_id: null });

    const out = await linesOf(batch.output_file_id);
    expect(out.map((l) => l.custom_id)).toEqual(['one', 'two', 'three']);
    for (const l of out) {
      expect(l).toMatchObject({ id: expect.stringMatching(/^batch_req_/) as string, error: null, response: { status_code: 200 } });
      expect(l.response?.request_id).toMatch(/^[0-9a-f]{32}$/);
      expect(l.response?.body).toMatchObject({ object: 'chat.completion', model: 'gpt-4o-mini' });
    }
    const usage = out.map((l) => l.response?.body.usage as OpenAI.CompletionUsage);
    const prompt = usage.reduce((s, u) => s + u.prompt_tokens, 0);
    const completion = usage.reduce((s, u) => s + u.completion_tokens, 0);
    expect(batch.usage).toMatchObject({ input_tokens: prompt, output_tokens: completion, total_tokens: prompt + completion });
    expect(sim.stats()).toMatchObject({ batchLines: 3, completions: 3, promptTokens: prompt, completionTokens: completion, requests: 0, errors: 0 });

    const outFile = await client.files.retrieve(batch.output_file_id ?? '');
    expect(outFile).toMatchObject({ purpose: 'batch_output', filename: `${batch.id}_output.jsonl` });
  });

  it('writes lines the API refuses to the error file with the status and error body a direct call gets', async () => {
    const noMessages = { custom_id: 'bad', method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-4o-mini' } };
    const created = await createBatch([chat('good', 'Hi'), noMessages]);
    const { batch } = await poll(created.id, ['completed']);
    expect(batch.request_counts).toEqual({ total: 2, completed: 1, failed: 1 });
    expect((await linesOf(batch.output_file_id)).map((l) => l.custom_id)).toEqual(['good']);
    const [err] = await linesOf(batch.error_file_id);
    expect(err).toEqual({
      id: expect.stringMatching(/^batch_req_/) as string,
      custom_id: 'bad',
      response: {
        status_code: 400,
        request_id: expect.any(String) as string,
        body: {
          error: { message: "Missing required parameter: 'messages'.", type: 'invalid_request_error', param: 'messages', code: 'missing_required_parameter' },
        },
      },
      error: null,
    });
    expect(sim.stats()).toMatchObject({ batchLines: 2, completions: 1, errors: 1 });
  });

  it('answers Responses and embeddings lines with those endpoints’ bodies', async () => {
    const resp = await createBatch([{ custom_id: 'r', method: 'POST', url: '/v1/responses', body: { model: 'gpt-4o', input: 'Hello' } }], '/v1/responses');
    const emb = await createBatch(
      [{ custom_id: 'e', method: 'POST', url: '/v1/embeddings', body: { model: 'text-embedding-3-small', input: ['a b', 'c'], encoding_format: 'float' } }],
      '/v1/embeddings',
    );
    const [r] = await linesOf((await poll(resp.id, ['completed'])).batch.output_file_id);
    expect(r?.response?.body).toMatchObject({ object: 'response', status: 'completed', model: 'gpt-4o' });
    const [e] = await linesOf((await poll(emb.id, ['completed'])).batch.output_file_id);
    expect(e?.response?.body).toMatchObject({ object: 'list', model: 'text-embedding-3-small' });
    expect((e?.response?.body.data as unknown[]).length).toBe(2);
    expect(sim.stats()).toMatchObject({ batchLines: 2, completions: 1, responses: 1, embeddings: 1 });
  });

  it('fails a batch whose input file is invalid, with OpenAI’s errors list, and runs none of its lines', async () => {
    const lines = [
      chat('a', 'x'),
      '{not json',
      chat('a', 'again'),
      { ...chat('c', 'x'), url: '/v1/embeddings' },
      { ...chat('d', 'x'), method: 'GET' },
      { custom_id: 'e', method: 'POST', url: '/v1/chat/completions' },
      chat('f', 'x', 'gpt-4o'),
    ];
    const created = await createBatch(lines);
    const { batch } = await poll(created.id, ['failed']);
    expect(batch.failed_at).toBeGreaterThanOrEqual(batch.created_at);
    expect(batch.in_progress_at).toBeNull();
    expect(batch.errors).toEqual({
      object: 'list',
      data: [
        { code: 'invalid_json_line', message: 'This line is not parseable as valid JSON.', param: null, line: 2 },
        expect.objectContaining({ code: 'duplicate_custom_id', param: 'custom_id', line: 3 }),
        expect.objectContaining({ code: 'url_mismatch', param: 'url', line: 4 }),
        expect.objectContaining({ code: 'invalid_value', param: 'method', line: 5 }),
        expect.objectContaining({ code: 'missing_required_parameter', param: 'body', line: 6 }),
        expect.objectContaining({ code: 'model_mismatch', line: 7 }),
      ],
    });
    expect(batch).toMatchObject({ output_file_id: null, error_file_id: null, request_counts: { total: 0, completed: 0, failed: 0 } });

    const empty = await poll((await createBatch([])).id, ['failed']);
    expect(empty.batch.errors?.data).toEqual([{ code: 'empty_file', message: expect.any(String) as string, param: null, line: null }]);
    expect(sim.stats().batchLines).toBe(0);
  });

  it('refuses a batch for an unknown file, a file of another purpose, an unsupported endpoint or window', async () => {
    const missing = await client.batches
      .create({ input_file_id: 'file-nope', endpoint: '/v1/chat/completions', completion_window: '24h' })
      .catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
    expect(missing).toMatchObject({ param: 'input_file_id' });

    const other = await client.files.create({ file: await toFile(Buffer.from('{}\n'), 'x.jsonl'), purpose: 'user_data' });
    const wrongPurpose = await client.batches
      .create({ input_file_id: other.id, endpoint: '/v1/chat/completions', completion_window: '24h' })
      .catch((e: unknown) => e);
    expect(wrongPurpose).toMatchObject({ status: 400, param: 'input_file_id' });

    const file = await uploadLines([chat('a', 'x')]);
    const endpoint = await client.batches.create({ input_file_id: file, endpoint: '/v1/moderations', completion_window: '24h' }).catch((e: unknown) => e);
    expect(endpoint).toMatchObject({ status: 400, param: 'endpoint' });
    const window = await client.batches
      .create({ input_file_id: file, endpoint: '/v1/chat/completions', completion_window: '48h' as '24h' })
      .catch((e: unknown) => e);
    expect(window).toMatchObject({ status: 400, param: 'completion_window' });
    await expect(client.batches.retrieve('batch_nope')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });
});

describe('batch expiry and cancellation', () => {
  it('expires a batch not done within its window: lines not run go to the error file as batch_expired', async () => {
    sim.setFaults({ batchDelayMs: 400, batchWindowMs: 250 });
    const created = await createBatch(['a', 'b', 'c', 'd'].map((id) => chat(id, `line ${id}`)));
    expect(created.expires_at).toBe(created.created_at + 1);
    const { batch } = await poll(created.id, ['expired']);
    const { total, completed, failed } = batch.request_counts ?? { total: 0, completed: 0, failed: 0 };
    expect(total).toBe(4);
    expect(completed).toBeGreaterThanOrEqual(1);
    expect(completed).toBeLessThan(4);
    expect(completed + failed).toBe(total);
    expect(batch.expired_at).toBeGreaterThanOrEqual(batch.created_at);
    expect(batch.completed_at).toBeNull();

    const out = await linesOf(batch.output_file_id);
    const errs = await linesOf(batch.error_file_id);
    expect(out).toHaveLength(completed);
    expect(errs).toHaveLength(failed);
    expect([...out, ...errs].map((l) => l.custom_id)).toEqual(['a', 'b', 'c', 'd']);
    for (const l of errs) {
      expect(l).toEqual({
        id: expect.stringMatching(/^batch_req_/) as string,
        custom_id: l.custom_id,
        response: null,
        error: { code: 'batch_expired', message: 'This request could not be executed before the completion window expired.' },
      });
    }
    expect(sim.stats()).toMatchObject({ batchLines: completed, completions: completed });
  });

  it('cancels a running batch: cancelling, then cancelled with the lines done so far kept', async () => {
    sim.setFaults({ batchDelayMs: 400 });
    const created = await createBatch(['a', 'b', 'c', 'd'].map((id) => chat(id, `line ${id}`)));
    let running = await client.batches.retrieve(created.id);
    while ((running.request_counts?.completed ?? 0) < 1) running = await sleep(3).then(() => client.batches.retrieve(created.id));
    const cancelling = await client.batches.cancel(created.id);
    expect(cancelling.status).toBe('cancelling');
    expect(cancelling.cancelling_at).toBeGreaterThanOrEqual(created.created_at);

    const { batch } = await poll(created.id, ['cancelled']);
    const counts = batch.request_counts ?? { total: 0, completed: 0, failed: 0 };
    expect(counts.total).toBe(4);
    expect(counts.completed).toBeGreaterThanOrEqual(1);
    expect(counts.completed + counts.failed).toBe(4);
    expect(batch.cancelled_at).toBeGreaterThanOrEqual(batch.created_at);
    const out = await linesOf(batch.output_file_id);
    expect(out).toHaveLength(counts.completed);
    expect((await linesOf(batch.error_file_id)).map((l) => l.error?.code)).toEqual(Array(counts.failed).fill('batch_cancelled'));
    await sleep(150);
    expect(sim.stats()).toMatchObject({ batchLines: counts.completed });

    const again = await client.batches.cancel(created.id).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(OpenAI.ConflictError);
    await expect(client.batches.cancel('batch_nope')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });
});

describe('GET /v1/batches', () => {
  it('lists newest first in cursor pages', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await createBatch([chat(`x${i}`, 'hi')])).id);
    const first = await client.batches.list({ limit: 2 });
    expect(first.data.map((b) => b.id)).toEqual([ids[2], ids[1]]);
    expect(first.has_more).toBe(true);
    const next = await client.batches.list({ limit: 2, after: ids[1] });
    expect(next.data.map((b) => b.id)).toEqual([ids[0]]);
    expect(next.has_more).toBe(false);
    const all: string[] = [];
    for await (const b of client.batches.list({ limit: 1 })) all.push(b.id);
    expect(all).toEqual([...ids].reverse());
    const raw = (await (await fetch(`${sim.url}/batches?limit=1`)).json()) as Record<string, unknown>;
    expect(raw).toMatchObject({ object: 'list', first_id: ids[2], last_id: ids[2], has_more: true });
    expect((await fetch(`${sim.url}/batches?limit=101`)).status).toBe(400);
  });

  it('forgets batches on reset and stops the running ones', async () => {
    sim.setFaults({ batchDelayMs: 200 });
    const b = await createBatch([chat('a', 'x'), chat('b', 'y')]);
    sim.reset();
    await expect(client.batches.retrieve(b.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await sleep(250);
    expect(sim.stats().batchLines).toBe(0);
  });

  it('takes batchDelayMs and batchWindowMs through the admin faults route', async () => {
    const ok = await fetch(`${admin}/faults`, { method: 'POST', body: JSON.stringify({ batchDelayMs: 30, batchWindowMs: 5000 }) });
    expect(await ok.json()).toMatchObject({ batchDelayMs: 30, batchWindowMs: 5000 });
    const bad = await fetch(`${admin}/faults`, { method: 'POST', body: JSON.stringify({ batchWindowMs: 0 }) });
    expect(bad.status).toBe(400);
  });
});
