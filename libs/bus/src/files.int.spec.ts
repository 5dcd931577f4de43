import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileStore, toFileObject, type FileStore } from './files.js';
import { minimalConfig, startTestBus, type TestBus } from './testing.js';

// Issue 14: the Files API's files live in the JetStream object store `sluice_files`, per tenant,
// with the store's SHA-256 digest.

let t: TestBus;
let files: FileStore;
beforeAll(async () => {
  t = await startTestBus(minimalConfig([{ id: 'acme' }, { id: 'globex' }]), { name: 'files' });
  files = fileStore(t.buckets.files);
});
afterAll(() => t?.stop());

const bytes = (s: string) => new TextEncoder().encode(s);
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('fileStore', () => {
  it('stores bytes with their tenant, name, purpose, size and digest, and answers them back exactly', async () => {
    const data = bytes('{"custom_id":"a"}\n{"custom_id":"b"}\n');
    const f = await files.put('acme', { filename: 'in.jsonl', purpose: 'batch', data });
    expect(f).toEqual({
      id: expect.stringMatching(/^file-[a-z2-7]{24}$/) as string,
      tenant: 'acme',
      filename: 'in.jsonl',
      purpose: 'batch',
      bytes: data.length,
      createdAt: expect.any(Number) as number,
      sha256: sha256(data),
    });
    expect(Math.abs(f.createdAt - Date.now() / 1000)).toBeLessThan(5);
    expect(await files.get('acme', f.id)).toEqual(f);
    expect(Buffer.from((await files.content('acme', f.id))!)).toEqual(Buffer.from(data));
    expect(toFileObject(f)).toEqual({
      id: f.id,
      object: 'file',
      bytes: data.length,
      created_at: f.createdAt,
      filename: 'in.jsonl',
      purpose: 'batch',
      status: 'processed',
      expires_at: null,
      status_details: null,
    });
  });

  it('keeps a file of many chunks (larger than NATS max payload) byte for byte', async () => {
    const data = new Uint8Array(9 * 1024 * 1024 + 7);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 255;
    const f = await files.put('acme', { filename: 'big.bin', purpose: 'user_data', data });
    expect(f).toMatchObject({ bytes: data.length, sha256: sha256(data) });
    const back = (await files.content('acme', f.id))!;
    expect(back.length).toBe(data.length);
    expect(sha256(back)).toBe(f.sha256);
    expect(await files.delete('acme', f.id)).toBe(true);
  });

  it('shows another tenant nothing of a file: the same answers as an unknown id', async () => {
    const f = await files.put('acme', { filename: 'secret.txt', purpose: 'user_data', data: bytes('x') });
    expect(await files.get('globex', f.id)).toBeUndefined();
    expect(await files.content('globex', f.id)).toBeUndefined();
    expect(await files.delete('globex', f.id)).toBe(false);
    expect((await files.list('globex', { limit: 100, order: 'asc' })).data.map((x) => x.id)).not.toContain(f.id);
    for (const unknown of ['file-aaaaaaaaaaaaaaaaaaaaaaaa', 'nope', '../x'])
      expect([await files.get('acme', unknown), await files.content('acme', unknown), await files.delete('acme', unknown)]).toEqual([
        undefined,
        undefined,
        false,
      ]);
    // the owner still has it
    expect(await files.get('acme', f.id)).toEqual(f);
  });

  it('deletes: the file is gone for get, content, list and a second delete', async () => {
    const f = await files.put('acme', { filename: 'gone.txt', purpose: 'user_data', data: bytes('bye') });
    expect(await files.delete('acme', f.id)).toBe(true);
    expect(await files.get('acme', f.id)).toBeUndefined();
    expect(await files.content('acme', f.id)).toBeUndefined();
    expect(await files.delete('acme', f.id)).toBe(false);
    expect((await files.list('acme', { limit: 100, order: 'asc' })).data.map((x) => x.id)).not.toContain(f.id);
  });

  it('lists in upload order or newest first, by purpose, in pages after a cursor', async () => {
    const tenant = 'lister';
    const put = (name: string, purpose: string) => files.put(tenant, { filename: name, purpose, data: bytes(name) });
    const a = await put('a', 'batch');
    const b = await put('b', 'user_data');
    const c = await put('c', 'batch');
    const ids = (p: { data: Array<{ id: string }> }) => p.data.map((f) => f.id);

    const first = await files.list(tenant, { limit: 2, order: 'desc' });
    expect(ids(first)).toEqual([c.id, b.id]);
    expect(first.hasMore).toBe(true);
    const second = await files.list(tenant, { limit: 2, order: 'desc', after: b.id });
    expect(ids(second)).toEqual([a.id]);
    expect(second.hasMore).toBe(false);
    expect(ids(await files.list(tenant, { limit: 10, order: 'asc' }))).toEqual([a.id, b.id, c.id]);
    expect(ids(await files.list(tenant, { limit: 10, order: 'asc', purpose: 'batch' }))).toEqual([a.id, c.id]);
    expect(await files.list(tenant, { limit: 10, order: 'asc', purpose: 'vision' })).toEqual({ data: [], hasMore: false });
  });
});
