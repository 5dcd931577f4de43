import { randomBytes } from 'node:crypto';
import type { ObjectInfo, ObjectStore } from '@nats-io/obj';

/** A file of the Files API as Sluice keeps it: the object's name is `id`, the rest is its metadata. */
export interface StoredFile {
  /** `file-` + 24 base32 characters (120 random bits). */
  id: string;
  tenant: string;
  filename: string;
  /** OpenAI's purpose: `batch`, `user_data`, ... or `batch_output` for what a batch writes. */
  purpose: string;
  bytes: number;
  /** Unix seconds. */
  createdAt: number;
  /** Lowercase hex SHA-256 of the bytes: the object store's own digest, checked again on every read. */
  sha256: string;
}

/**
 * The Files API's store, per tenant: another tenant's file answers exactly as an unknown id does
 * (undefined, false), so an id tells nothing about other tenants.
 */
export interface FileStore {
  /** Stores `data` whole under a new id. Chunked by the object store (128 KiB chunks), so it may exceed NATS's max payload. */
  put(tenant: string, file: { filename: string; purpose: string; data: Uint8Array }): Promise<StoredFile>;
  get(tenant: string, id: string): Promise<StoredFile | undefined>;
  /** The bytes; rejects when they no longer match the stored digest. */
  content(tenant: string, id: string): Promise<Uint8Array | undefined>;
  /**
   * A page of the tenant's files in upload order (`asc`) or newest first (`desc`), optionally of
   * one `purpose`, starting after the file `after` (an id not in the list: from the start).
   * Reads every file's metadata in the bucket: fine for thousands of files, not millions.
   */
  list(tenant: string, opts: { purpose?: string; after?: string; limit: number; order: 'asc' | 'desc' }): Promise<{ data: StoredFile[]; hasMore: boolean }>;
  /** True when the tenant had the file. */
  delete(tenant: string, id: string): Promise<boolean>;
}

/** OpenAI's File object (`openai` SDK `FileObject`) for a stored file. */
export function toFileObject(f: StoredFile) {
  return {
    id: f.id,
    object: 'file' as const,
    bytes: f.bytes,
    created_at: f.createdAt,
    filename: f.filename,
    purpose: f.purpose,
    status: 'processed' as const,
    expires_at: null,
    status_details: null,
  };
}

/**
 * The FileStore over a JetStream object store (`Buckets.files`).
 *
 * @example
 * const files = fileStore(buckets.files);
 * const f = await files.put('acme', { filename: 'in.jsonl', purpose: 'batch', data });
 * const bytes = await files.content('acme', f.id);
 */
export function fileStore(os: ObjectStore): FileStore {
  const mine = async (tenant: string, id: string): Promise<ObjectInfo | undefined> => {
    if (!FILE_ID.test(id)) return undefined;
    const info = await os.info(id);
    return info && !info.deleted && info.metadata?.tenant === tenant ? info : undefined;
  };
  return {
    async put(tenant, { filename, purpose, data }) {
      const createdAt = Math.floor(Date.now() / 1000);
      const info = await os.putBlob({ name: newFileId(), metadata: { tenant, filename, purpose, createdAt: String(createdAt) } }, data);
      return fromInfo(info);
    },
    async get(tenant, id) {
      const info = await mine(tenant, id);
      return info && fromInfo(info);
    },
    async content(tenant, id) {
      if (!FILE_ID.test(id)) return undefined;
      const r = await os.get(id);
      if (!r) return undefined;
      if (r.info.metadata?.tenant !== tenant) {
        await r.data.cancel();
        return undefined;
      }
      const chunks: Uint8Array[] = [];
      const reader = r.data.getReader();
      for (let c = await reader.read(); !c.done; c = await reader.read()) chunks.push(c.value);
      const err = await r.error;
      if (err) throw err;
      return Buffer.concat(chunks);
    },
    async list(tenant, { purpose, after, limit, order }) {
      // the store lists in the stream order of the objects' metadata, which is upload order: files are never updated
      const all = (await os.list()).filter((i) => !i.deleted && i.metadata?.tenant === tenant && (purpose === undefined || i.metadata.purpose === purpose));
      if (order === 'desc') all.reverse();
      const start = after === undefined ? 0 : all.findIndex((i) => i.name === after) + 1;
      const page = all.slice(start, start + limit);
      return { data: page.map(fromInfo), hasMore: start + limit < all.length };
    },
    async delete(tenant, id) {
      if (!(await mine(tenant, id))) return false;
      await os.delete(id);
      return true;
    },
  };
}

const FILE_ID = /^file-[a-z2-7]{24}$/;
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

function newFileId(): string {
  let id = 'file-';
  for (const b of randomBytes(24)) id += BASE32[b & 31];
  return id;
}

function fromInfo(info: ObjectInfo): StoredFile {
  const m = info.metadata ?? {};
  return {
    id: info.name,
    tenant: m.tenant ?? '',
    filename: m.filename ?? '',
    purpose: m.purpose ?? '',
    bytes: info.size,
    createdAt: Number(m.createdAt ?? 0),
    // the store's digest is `SHA-256=` + padded base64url
    sha256: Buffer.from(info.digest.slice('SHA-256='.length), 'base64url').toString('hex'),
  };
}
