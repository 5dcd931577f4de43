import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import busboy from 'busboy';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { toFileObject } from '@sluice/bus';
import type { IngressDeps } from './deps.js';
import { invalid, RequestRejected } from './rejection.js';

/** `ingress.maxFileBytes` when the config has none: OpenAI's own 100 MiB (its Batch API's input limit is 200 MB). */
const DEFAULT_MAX_FILE_BYTES = 100 * 1024 * 1024;
/** How far past the limit an upload is still read (and dropped) so that its sender reads the 413, as http-body.ts does for JSON. */
const DRAIN_PAST_LIMIT_BYTES = 16 * 1024 * 1024;
/** The purposes OpenAI takes on upload; `batch_output` is written only by a batch. */
const UPLOAD_PURPOSES = ['assistants', 'batch', 'evals', 'fine-tune', 'user_data', 'vision'];
/** OpenAI's largest batch input, in requests (lines). */
const MAX_BATCH_LINES = 50_000;
/** OpenAI's default and largest page of `GET /v1/files`. */
const MAX_FILES_PAGE = 10_000;

type ById = { Params: { id: string } };
type ListQuery = { Querystring: { purpose?: string; order?: string; limit?: string; after?: string } };

/**
 * The Files API for tenants, as OpenAI serves it (README, "Files"): `POST /v1/files`
 * (multipart/form-data `file` + `purpose`, at most `ingress.maxFileBytes`), `GET /v1/files`
 * (`purpose`, `limit` 1..10,000 default 10,000, `after`, `order` default `desc`), `GET /v1/files/{id}`,
 * `GET /v1/files/{id}/content` (the bytes) and `DELETE /v1/files/{id}`. Files live in the
 * `sluice_files` object store (`deps.files`), per tenant: another tenant's id is a 404
 * `file_not_found` like an unknown one. Errors: 400 `invalid_request` (missing or unknown
 * field), 400 `invalid_file` (a `batch` file that is not JSONL or over 50,000 lines), 413
 * `file_too_large`, 404 `file_not_found` (param `file_id`).
 *
 * A plugin, so that its multipart parser serves these routes only: the pipeline's routes keep taking JSON alone.
 *
 * @example
 * app.register(fileRoutes(deps), { auth });
 */
export function fileRoutes(deps: IngressDeps) {
  return async (app: FastifyInstance, { auth }: { auth: (request: FastifyRequest) => Promise<void> }) => {
    app.addContentTypeParser('multipart/form-data', (request: FastifyRequest, payload: Readable) =>
      readUpload(request.headers, payload, deps.config().ingress.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES),
    );
    const tenantOf = (request: FastifyRequest) => request.sluice.tenant!.id;

    app.post('/v1/files', { onRequest: auth }, async (request) => {
      const { file, purpose } = uploadOf(request.body);
      const stored = await deps.files.put(tenantOf(request), { filename: file.filename, purpose, data: file.data });
      request.log.info({ file: stored.id, purpose, bytes: stored.bytes }, 'file stored');
      return toFileObject(stored);
    });

    app.get<ListQuery>('/v1/files', { onRequest: auth }, async (request) => {
      const { purpose, after } = request.query;
      const order = request.query.order ?? 'desc';
      if (order !== 'asc' && order !== 'desc') throw invalid('order', `Invalid 'order': expected 'asc' or 'desc', got '${order}'.`);
      const limit = parseLimit(request.query.limit);
      const page = await deps.files.list(tenantOf(request), { limit, order, ...(purpose ? { purpose } : {}), ...(after ? { after } : {}) });
      const data = page.data.map(toFileObject);
      return { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: page.hasMore };
    });

    app.get<ById>('/v1/files/:id', { onRequest: auth }, async (request) => {
      const f = await deps.files.get(tenantOf(request), request.params.id);
      if (!f) throw noSuchFile(request.params.id);
      return toFileObject(f);
    });

    app.get<ById>('/v1/files/:id/content', { onRequest: auth }, async (request, reply) => {
      const data = await deps.files.content(tenantOf(request), request.params.id);
      if (!data) throw noSuchFile(request.params.id);
      return reply.type('application/octet-stream').send(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    });

    app.delete<ById>('/v1/files/:id', { onRequest: auth }, async (request) => {
      const { id } = request.params;
      if (!(await deps.files.delete(tenantOf(request), id))) throw noSuchFile(id);
      return { id, object: 'file', deleted: true };
    });
  };
}

function noSuchFile(id: string): RequestRejected {
  return new RequestRejected('file_not_found', `No such File object: ${id}`, 'file_id');
}

function parseLimit(raw: string | undefined): number {
  if (raw === undefined || raw === '') return MAX_FILES_PAGE;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > MAX_FILES_PAGE)
    throw invalid('limit', `Invalid 'limit': expected an integer between 1 and ${MAX_FILES_PAGE}, got '${raw}'.`);
  return n;
}

interface Upload {
  filename: string;
  data: Buffer;
}

/** A parsed multipart body: its text fields (the last of a repeated name wins) and its `file` part. */
interface Multipart {
  fields: Record<string, string>;
  file?: Upload;
}

/** The checked upload of `POST /v1/files`: a file part and one of OpenAI's purposes; a `batch` file must be JSONL of at most 50,000 lines. */
function uploadOf(body: unknown): { file: Upload; purpose: string } {
  const form = isMultipart(body) ? body : undefined;
  if (!form?.file) throw invalid('file', "Missing required parameter: 'file' (send multipart/form-data with a 'file' part).");
  const purpose = form.fields.purpose;
  if (!purpose) throw invalid('purpose', "Missing required parameter: 'purpose'.");
  if (!UPLOAD_PURPOSES.includes(purpose))
    throw invalid('purpose', `'${purpose}' is not one of [${UPLOAD_PURPOSES.map((p) => `'${p}'`).join(', ')}] - 'purpose'.`);
  if (purpose === 'batch') checkBatchFile(form.file);
  return { file: form.file, purpose };
}

/** Only the file's form: whether each line is a valid request is the batch's to say, line by line, as OpenAI does. */
function checkBatchFile({ filename, data }: Upload): void {
  if (!filename.endsWith('.jsonl')) throw new RequestRejected('invalid_file', 'Invalid file format for Batch API. Must be .jsonl', 'file');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(data);
  } catch {
    throw new RequestRejected('invalid_file', 'A batch file must be UTF-8 text: one JSON request per line.', 'file');
  }
  let lines = 0;
  for (const line of text.split('\n')) if (line.trim() !== '') lines++;
  if (lines > MAX_BATCH_LINES)
    throw new RequestRejected('invalid_file', `A batch file holds at most ${MAX_BATCH_LINES} requests; this one has ${lines} lines.`, 'file');
}

function isMultipart(v: unknown): v is Multipart {
  return typeof v === 'object' && v !== null && 'fields' in v;
}

/**
 * Reads a multipart/form-data upload whole, keeping the part named `file`. An upload over `limit`
 * bytes is read to its end and dropped before the 413 goes out (a client that writes its whole
 * body before reading would otherwise see a reset), unless it runs DRAIN_PAST_LIMIT_BYTES past
 * the limit, which is cut at once.
 */
function readUpload(headers: IncomingHttpHeaders, payload: Readable, limit: number): Promise<Multipart> {
  return new Promise((resolve, reject) => {
    const tooLarge = () =>
      new RequestRejected('file_too_large', `The file is larger than the ${limit} bytes this gateway accepts (ingress.maxFileBytes).`, 'file');
    const refuse = (e: RequestRejected): void => {
      payload.unpipe();
      payload.resume();
      reject(e);
    };
    if (Number(headers['content-length']) > limit + DRAIN_PAST_LIMIT_BYTES) return refuse(tooLarge());
    let parser: busboy.Busboy;
    try {
      // one byte past the limit: busboy stops at fileSize and says nothing of whether more was coming
      parser = busboy({ headers, limits: { fileSize: limit + 1, files: 1 } });
    } catch (e) {
      return refuse(invalid('file', `The body is not a multipart form: ${(e as Error).message}`));
    }
    const out: Multipart = { fields: {} };
    let over = false;
    let received = 0;
    payload.on('data', (c: Buffer) => {
      received += c.length;
      if (received > limit + DRAIN_PAST_LIMIT_BYTES) refuse(tooLarge());
    });
    parser.on('field', (name, value) => (out.fields[name] = value));
    parser.on('file', (field, stream, info) => {
      if (field !== 'file') return void stream.resume();
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => void (over || chunks.push(c)));
      // busboy truncates silently past fileSize: what is left is drained and dropped
      stream.on('limit', () => {
        over = true;
        chunks.length = 0;
      });
      stream.on('end', () => {
        const data = Buffer.concat(chunks);
        if (data.length > limit) over = true;
        else out.file = { filename: info.filename ?? 'file', data };
      });
    });
    parser.on('error', (e: Error) => refuse(invalid('file', `The body is not a valid multipart form: ${e.message}`)));
    parser.on('close', () => (over ? reject(tooLarge()) : resolve(out)));
    payload.pipe(parser);
  });
}
