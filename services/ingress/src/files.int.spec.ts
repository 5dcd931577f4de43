import { createHash } from 'node:crypto';
import OpenAI, { type APIError } from 'openai';
import { toFile } from 'openai/uploads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeJson, fileStore } from '@sluice/bus';
import { eventually } from '@sluice/bus/testing';
import { hashKey, type VirtualKey } from '@sluice/contracts';
import { KEYS, startHarness, type Harness } from './testing.js';

// Issue 14, item 1: the Files API on ingress as the openai SDK calls it, files in the
// sluice_files object store, per tenant.

let h: Harness;
let acme: OpenAI;
let beta: OpenAI;

beforeAll(async () => {
  h = await startHarness();
  acme = new OpenAI({ baseURL: h.baseURL, apiKey: KEYS.acme, maxRetries: 0 });
  beta = new OpenAI({ baseURL: h.baseURL, apiKey: KEYS.beta, maxRetries: 0 });
});
afterAll(() => h?.stop());

const jsonl = '{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{}}\n{"custom_id":"b"}\n';
const upload = async (client: OpenAI, name: string, purpose: OpenAI.FilePurpose, body: string | Buffer = jsonl) =>
  client.files.create({ file: await toFile(Buffer.from(body), name), purpose });
const refusal = (p: Promise<unknown>) =>
  p.then(
    () => expect.fail('expected a refusal'),
    (e: unknown) => e as APIError,
  );

describe('Files API', () => {
  it('stores an upload and answers it back as a File object, its exact bytes, a listing and a deletion', async () => {
    const f = await upload(acme, 'requests.jsonl', 'batch');
    expect(f).toEqual({
      id: expect.stringMatching(/^file-[a-z2-7]{24}$/) as string,
      object: 'file',
      bytes: Buffer.byteLength(jsonl),
      created_at: expect.any(Number) as number,
      filename: 'requests.jsonl',
      purpose: 'batch',
      status: 'processed',
      expires_at: null,
      status_details: null,
    });
    expect(Math.abs(f.created_at - Date.now() / 1000)).toBeLessThan(5);
    expect(await acme.files.retrieve(f.id)).toEqual(f);
    expect(await (await acme.files.content(f.id)).text()).toBe(jsonl);
    // the object store kept its checksum
    const stored = await fileStore(h.buckets.files).get('acme', f.id);
    expect(stored?.sha256).toBe(createHash('sha256').update(jsonl).digest('hex'));
    expect((await acme.files.list()).data.map((x) => x.id)).toContain(f.id);

    expect(await acme.files.delete(f.id)).toEqual({ id: f.id, object: 'file', deleted: true });
    const gone = await refusal(acme.files.retrieve(f.id));
    expect(gone).toBeInstanceOf(OpenAI.NotFoundError);
    expect(gone).toMatchObject({ status: 404, code: 'file_not_found', param: 'file_id', type: 'invalid_request_error' });
    expect(gone.message).toContain(`No such File object: ${f.id}`);
    await expect(acme.files.content(f.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(acme.files.delete(f.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('keeps binary bytes exactly, for every purpose a client may upload with', async () => {
    const bytes = Buffer.from([0, 255, 13, 10, 45, 45, 0x80]);
    for (const purpose of ['user_data', 'assistants', 'fine-tune', 'vision', 'evals'] as const) {
      const f = await upload(acme, 'blob.bin', purpose, bytes);
      expect(f).toMatchObject({ purpose, bytes: bytes.length });
      expect(Buffer.from(await (await acme.files.content(f.id)).arrayBuffer())).toEqual(bytes);
    }
  });

  it('lists newest first in cursor pages the SDK follows, by purpose, oldest first on asking', async () => {
    const a = await upload(beta, 'a.jsonl', 'batch');
    const b = await upload(beta, 'b.txt', 'user_data');
    const c = await upload(beta, 'c.jsonl', 'batch');
    const first = await beta.files.list({ limit: 2 });
    expect(first.data.map((f) => f.id)).toEqual([c.id, b.id]);
    expect(first.has_more).toBe(true);
    const ids: string[] = [];
    for await (const f of beta.files.list({ limit: 1 })) ids.push(f.id);
    expect(ids).toEqual([c.id, b.id, a.id]);
    expect((await beta.files.list({ purpose: 'batch', order: 'asc' })).data.map((f) => f.id)).toEqual([a.id, c.id]);
    for (const limit of ['0', '10001', 'x']) {
      const res = await fetch(`${h.baseURL}/files?limit=${limit}`, { headers: { authorization: `Bearer ${KEYS.beta}` } });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: 'invalid_request', param: 'limit' } });
    }
  });

  it("takes a tenant's virtual key as the tenant's own: the same files, and a revoked key none", async () => {
    const key = 'sk-sluice-files-virtual-key-0123456789abcdef';
    const record: VirtualKey = { id: 'key_filesTestKey00000001', tenant: 'acme', name: 'files', sha256: hashKey(key), createdAt: Date.now() };
    await h.buckets.keys.put(record.id, encodeJson(record));
    const viaKey = new OpenAI({ baseURL: h.baseURL, apiKey: key, maxRetries: 0 });
    const f = await eventually(() => upload(viaKey, 'vk.jsonl', 'batch'), 5000);
    expect(await acme.files.retrieve(f.id)).toEqual(f);
    await h.buckets.keys.put(record.id, encodeJson({ ...record, revokedAt: Date.now() }));
    await eventually(async () => expect(await refusal(viaKey.files.retrieve(f.id))).toMatchObject({ status: 401, code: 'key_expired' }), 5000);
  });

  it('shows another tenant nothing of a file: a 404 file_not_found as for an unknown id', async () => {
    const f = await upload(acme, 'secret.jsonl', 'batch');
    for (const call of [() => beta.files.retrieve(f.id), () => beta.files.content(f.id), () => beta.files.delete(f.id)])
      expect(await refusal(call())).toMatchObject({ status: 404, code: 'file_not_found', param: 'file_id' });
    expect((await beta.files.list()).data.map((x) => x.id)).not.toContain(f.id);
    expect(await refusal(acme.files.retrieve('file-unknown'))).toMatchObject({ status: 404, code: 'file_not_found' });
    expect(await acme.files.retrieve(f.id)).toMatchObject({ id: f.id });
  });

  it('refuses an upload without a key, without a file, without a purpose, or with a purpose a client may not use', async () => {
    const anonymous = await fetch(`${h.baseURL}/files`, { method: 'POST', body: new FormData() });
    expect(anonymous.status).toBe(401);

    const noFile = new FormData();
    noFile.append('purpose', 'batch');
    const res = await fetch(`${h.baseURL}/files`, { method: 'POST', headers: { authorization: `Bearer ${KEYS.acme}` }, body: noFile });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: 'invalid_request', param: 'file' } });

    const asJson = await fetch(`${h.baseURL}/files`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEYS.acme}`, 'content-type': 'application/json' },
      body: '{"purpose":"batch"}',
    });
    expect(asJson.status).toBe(400);
    expect(await asJson.json()).toMatchObject({ error: { code: 'invalid_request', param: 'file' } });

    const noPurpose = new FormData();
    noPurpose.append('file', new Blob([jsonl]), 'x.jsonl');
    const res2 = await fetch(`${h.baseURL}/files`, { method: 'POST', headers: { authorization: `Bearer ${KEYS.acme}` }, body: noPurpose });
    expect(res2.status).toBe(400);
    expect(await res2.json()).toMatchObject({ error: { code: 'invalid_request', param: 'purpose' } });

    for (const purpose of ['batch_output', 'anything']) {
      const bad = await refusal(upload(acme, 'x.jsonl', purpose as OpenAI.FilePurpose));
      expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
      expect(bad).toMatchObject({ status: 400, code: 'invalid_request', param: 'purpose' });
    }
  });

  it('takes as batch input only JSONL of at most 50,000 lines, leaving each line to the batch', async () => {
    const notJsonl = await refusal(upload(acme, 'requests.json', 'batch'));
    expect(notJsonl).toMatchObject({ status: 400, code: 'invalid_file', param: 'file' });
    expect(notJsonl.message).toContain('Must be .jsonl');
    expect(await refusal(upload(acme, 'bin.jsonl', 'batch', Buffer.from([0xff, 0xfe, 0x00])))).toMatchObject({ status: 400, code: 'invalid_file' });
    const tooMany = await refusal(upload(acme, 'many.jsonl', 'batch', '{}\n'.repeat(50_001)));
    expect(tooMany).toMatchObject({ status: 400, code: 'invalid_file', param: 'file' });
    expect(tooMany.message).toContain('50000');
    // exactly the limit, and lines that are no valid request: the batch says which, not the upload
    expect(await upload(acme, 'max.jsonl', 'batch', '{}\n'.repeat(50_000))).toMatchObject({ purpose: 'batch' });
    expect(await upload(acme, 'odd.jsonl', 'batch', 'not json\n')).toMatchObject({ purpose: 'batch' });
  });

  it('refuses a file over ingress.maxFileBytes with 413 file_too_large, and takes one at the limit', async () => {
    await h.applyConfig((c) => ({ ...c, ingress: { ...c.ingress, maxFileBytes: 64 * 1024 } }));
    try {
      const big = await refusal(upload(acme, 'big.bin', 'user_data', Buffer.alloc(64 * 1024 + 1, 7)));
      expect(big).toMatchObject({ status: 413, code: 'file_too_large', param: 'file' });
      expect(big.message).toContain('65536');
      // far past the limit: cut without reading it all, still a 413 for a client that reads as it sends
      const huge = await fetch(`${h.baseURL}/files`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEYS.acme}` },
        body: (() => {
          const form = new FormData();
          form.append('purpose', 'user_data');
          form.append('file', new Blob([Buffer.alloc(20 * 1024 * 1024)]), 'huge.bin');
          return form;
        })(),
      });
      expect(huge.status).toBe(413);
      expect(await huge.json()).toMatchObject({ error: { code: 'file_too_large' } });
      expect(await upload(acme, 'fits.bin', 'user_data', Buffer.alloc(64 * 1024, 7))).toMatchObject({ bytes: 64 * 1024 });
    } finally {
      await h.applyConfig((c) => c);
    }
  });

  it('takes a file larger than the NATS max payload and gives it back whole', async () => {
    const data = Buffer.alloc(12 * 1024 * 1024);
    for (let i = 0; i < data.length; i += 4096) data[i] = i & 255;
    const f = await upload(acme, 'large.bin', 'user_data', data);
    expect(f.bytes).toBe(data.length);
    const back = Buffer.from(await (await acme.files.content(f.id)).arrayBuffer());
    expect(back.equals(data)).toBe(true);
  });
});
