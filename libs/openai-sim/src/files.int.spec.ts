import OpenAI from 'openai';
import { toFile } from 'openai/uploads';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Sim, startSim } from './mod.js';

let sim: Sim;
let client: OpenAI;

beforeAll(async () => {
  sim = await startSim();
  client = new OpenAI({ baseURL: sim.url, apiKey: 'x', maxRetries: 0 });
});
afterAll(() => sim.close());
beforeEach(() => sim.reset());

const text = '{"custom_id":"a"}\n{"custom_id":"b"}\n';
const upload = async (name: string, purpose: OpenAI.FilePurpose, body = text) => client.files.create({ file: await toFile(Buffer.from(body), name), purpose });

describe('Files API', () => {
  it('stores an upload and answers it back as a File object, its bytes, and a deletion', async () => {
    const f = await upload('requests.jsonl', 'batch');
    expect(f).toEqual({
      id: expect.stringMatching(/^file-[0-9A-Za-z]{22}$/) as string,
      object: 'file',
      bytes: Buffer.byteLength(text),
      created_at: expect.any(Number) as number,
      filename: 'requests.jsonl',
      purpose: 'batch',
      status: 'processed',
      status_details: null,
      expires_at: null,
    });
    expect(Math.abs(f.created_at - Date.now() / 1000)).toBeLessThan(5);
    expect(await client.files.retrieve(f.id)).toEqual(f);
    expect(await (await client.files.content(f.id)).text()).toBe(text);

    expect(await client.files.delete(f.id)).toEqual({ id: f.id, object: 'file', deleted: true });
    const gone = await client.files.retrieve(f.id).catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(OpenAI.NotFoundError);
    expect(gone).toMatchObject({ status: 404, type: 'invalid_request_error', param: 'id' });
    expect((gone as Error).message).toContain(`No such File object: ${f.id}`);
    await expect(client.files.content(f.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(client.files.delete(f.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('keeps binary bytes exactly and takes every upload purpose', async () => {
    const bytes = Buffer.from([0, 255, 13, 10, 45, 45, 0x80]);
    for (const purpose of ['user_data', 'assistants', 'fine-tune', 'vision', 'evals'] as const) {
      const f = await client.files.create({ file: await toFile(bytes, 'blob.bin'), purpose });
      expect(f).toMatchObject({ purpose, bytes: bytes.length });
      expect(Buffer.from(await (await client.files.content(f.id)).arrayBuffer())).toEqual(bytes);
    }
  });

  it('lists newest first in cursor pages, filtered by purpose', async () => {
    const a = await upload('a.jsonl', 'batch');
    const b = await upload('b.txt', 'user_data');
    const c = await upload('c.jsonl', 'batch');
    const first = await client.files.list({ limit: 2 });
    expect(first.data.map((f) => f.id)).toEqual([c.id, b.id]);
    expect(first.has_more).toBe(true);
    const ids: string[] = [];
    for await (const f of client.files.list({ limit: 1 })) ids.push(f.id);
    expect(ids).toEqual([c.id, b.id, a.id]);
    expect((await client.files.list({ purpose: 'batch', order: 'asc' })).data.map((f) => f.id)).toEqual([a.id, c.id]);
  });

  it('refuses an upload without a file, without a purpose or with an unknown purpose', async () => {
    const noFile = await fetch(`${sim.url}/files`, { method: 'POST', body: JSON.stringify({ purpose: 'batch' }) });
    expect(noFile.status).toBe(400);
    expect(await noFile.json()).toMatchObject({ error: { param: 'file', code: 'missing_required_parameter' } });

    const form = new FormData();
    form.append('file', new Blob([text]), 'x.jsonl');
    const noPurpose = await fetch(`${sim.url}/files`, { method: 'POST', body: form });
    expect(noPurpose.status).toBe(400);
    expect(await noPurpose.json()).toMatchObject({ error: { param: 'purpose', code: 'missing_required_parameter' } });

    const bad = await upload('x.jsonl', 'batch_output' as OpenAI.FilePurpose).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect(bad).toMatchObject({ param: 'purpose', code: 'invalid_value' });
  });

  it('forgets every file on reset', async () => {
    const f = await upload('a.jsonl', 'batch');
    sim.reset();
    await expect(client.files.retrieve(f.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    expect((await client.files.list()).data).toEqual([]);
  });
});
