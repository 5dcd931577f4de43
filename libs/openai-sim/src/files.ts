import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import busboy from 'busboy';

/** What a file was uploaded for: the purposes `POST /v1/files` takes, and `batch_output`, which only a batch writes. */
export type FilePurpose = 'assistants' | 'batch' | 'batch_output' | 'evals' | 'fine-tune' | 'user_data' | 'vision';

/** The purposes a client may upload with; the sim stores every one as plain bytes. */
export const UPLOAD_PURPOSES: ReadonlySet<string> = new Set(['assistants', 'batch', 'evals', 'fine-tune', 'user_data', 'vision']);

/** A stored file: its bytes and what the File object reports. */
export interface StoredFile {
  id: string;
  filename: string;
  purpose: FilePurpose;
  /** Unix seconds. */
  createdAt: number;
  data: Buffer;
}

/** The Files API's `file` object. */
export function fileObject(f: StoredFile): object {
  return {
    id: f.id,
    object: 'file',
    bytes: f.data.length,
    created_at: f.createdAt,
    filename: f.filename,
    purpose: f.purpose,
    status: 'processed',
    status_details: null,
    expires_at: null,
  };
}

/** The files of one simulator, oldest first, kept in memory until deleted or reset. */
export class FileStore {
  private readonly files = new Map<string, StoredFile>();

  /** Stores bytes under a new `file-<base62>` id. `now` is Unix milliseconds. */
  add(filename: string, purpose: FilePurpose, data: Buffer, now: number): StoredFile {
    const f: StoredFile = { id: `file-${randomId(22)}`, filename, purpose, createdAt: Math.floor(now / 1000), data };
    this.files.set(f.id, f);
    return f;
  }

  get(id: string): StoredFile | undefined {
    return this.files.get(id);
  }

  /** True when the file existed. */
  delete(id: string): boolean {
    return this.files.delete(id);
  }

  /** Every file, oldest first. */
  all(): StoredFile[] {
    return [...this.files.values()];
  }

  clear(): void {
    this.files.clear();
  }
}

/** One file part of a multipart body. */
interface Upload {
  field: string;
  filename: string;
  data: Buffer;
}

/** A parsed multipart/form-data body: its text fields (the last of a repeated name wins) and its file parts. */
export interface Multipart {
  fields: Record<string, string>;
  files: Upload[];
}

/** True for a body the multipart parser produced. */
export function isMultipart(v: unknown): v is Multipart {
  return typeof v === 'object' && v !== null && 'fields' in v && 'files' in v && Array.isArray((v as Multipart).files);
}

/**
 * Reads a multipart/form-data request whole. Rejects with a 400-coded error on a malformed body
 * and a 413 when one file part exceeds `limit` bytes (busboy would otherwise truncate it silently).
 */
export function readMultipart(headers: IncomingHttpHeaders, req: Readable, limit: number): Promise<Multipart> {
  return new Promise((resolve, reject) => {
    const fail = (message: string, statusCode: number): void => {
      req.unpipe();
      req.resume();
      reject(Object.assign(new Error(message), { statusCode }));
    };
    let parser: busboy.Busboy;
    try {
      parser = busboy({ headers, limits: { fileSize: limit } });
    } catch (err) {
      fail(`Could not parse multipart form: ${(err as Error).message}`, 400);
      return;
    }
    const out: Multipart = { fields: {}, files: [] };
    parser.on('field', (name, value) => {
      out.fields[name] = value;
    });
    parser.on('file', (field, stream, info) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('limit', () => fail(`The file is larger than the ${limit} bytes this simulator accepts.`, 413));
      stream.on('end', () => out.files.push({ field, filename: info.filename ?? 'file', data: Buffer.concat(chunks) }));
    });
    parser.on('error', (err: Error) => fail(`Could not parse multipart form: ${err.message}`, 400));
    parser.on('close', () => resolve(out));
    req.pipe(parser);
  });
}

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** `n` random base62 characters, the alphabet of OpenAI's file ids. */
function randomId(n: number): string {
  // 248 = 62 * 4: bytes at or above it are dropped so every character is equally likely.
  let out = '';
  while (out.length < n) for (const b of randomBytes(n)) if (b < 248 && out.length < n) out += BASE62.charAt(b % 62);
  return out;
}
