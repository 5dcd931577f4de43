import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BATCH_ENDPOINTS, isJsonObject, makeEvent, ServiceName, toBatchObject, type BatchEndpoint, type BatchRecord } from '@sluice/contracts';
import type { IngressDeps } from './deps.js';
import { invalid, RequestRejected } from './rejection.js';

type ById = { Params: { id: string } };
type ListQuery = { Querystring: { limit?: string; after?: string } };

const DEFAULT_PAGE = 20;
const MAX_PAGE = 100;
// OpenAI's metadata limits: 16 pairs, keys up to 64 characters, values up to 512
const MAX_METADATA_KEYS = 16;
const MAX_METADATA_KEY = 64;
const MAX_METADATA_VALUE = 512;
/** OpenAI's one completion window. */
const WINDOW_SECONDS = 24 * 3600;
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/**
 * The Batch API for tenants, as OpenAI serves it (docs/batches.md): `POST /v1/batches`
 * (`input_file_id` of a `batch` file, `endpoint` one of /v1/chat/completions, /v1/responses,
 * /v1/embeddings, `completion_window` `24h`, `metadata` at most 16 pairs), `GET /v1/batches/{id}`,
 * `GET /v1/batches` (newest first, `limit` 1..100 default 20, `after`) and
 * `POST /v1/batches/{id}/cancel`. A batch is created `validating`; the runner (batch-runner.ts)
 * takes it from there. Errors: 400 `invalid_request` naming the field, 404 `file_not_found`
 * (param `input_file_id`), 404 `batch_not_found`, 409 `batch_not_cancellable`.
 *
 * @example
 * app.register(batchRoutes(deps), { auth });
 */
export function batchRoutes(deps: IngressDeps) {
  return async (app: FastifyInstance, { auth }: { auth: (request: FastifyRequest) => Promise<void> }) => {
    const tenantOf = (request: FastifyRequest) => request.sluice.tenant!.id;

    app.post('/v1/batches', { onRequest: auth }, async (request) => {
      const tenant = tenantOf(request);
      const asked = batchRequest(request.body);
      const file = await deps.files.get(tenant, asked.inputFileId);
      if (!file) throw new RequestRejected('file_not_found', `No such File object: ${asked.inputFileId}`, 'input_file_id');
      if (file.purpose !== 'batch') {
        throw invalid('input_file_id', `The input file ${file.id} must be uploaded with purpose 'batch', not '${file.purpose}'.`);
      }
      const now = Math.floor(deps.now() / 1000);
      const record: BatchRecord = {
        id: newBatchId(),
        object: 'batch',
        endpoint: asked.endpoint,
        model: null,
        errors: null,
        input_file_id: file.id,
        completion_window: '24h',
        status: 'validating',
        output_file_id: null,
        error_file_id: null,
        created_at: now,
        expires_at: now + WINDOW_SECONDS,
        in_progress_at: null,
        finalizing_at: null,
        completed_at: null,
        failed_at: null,
        expired_at: null,
        cancelling_at: null,
        cancelled_at: null,
        request_counts: { total: 0, completed: 0, failed: 0 },
        usage: {
          input_tokens: 0,
          input_tokens_details: { cached_tokens: 0 },
          output_tokens: 0,
          output_tokens_details: { reasoning_tokens: 0 },
          total_tokens: 0,
        },
        metadata: asked.metadata,
        tenant,
        lines: 0,
        submitted: 0,
        ...(request.sluice.key ? { keyId: request.sluice.key.id } : {}),
      };
      // the event first: a batch in the bucket always has its batch.created on the timeline
      const created = makeEvent(
        'batch.created',
        { requestId: record.id, tenant, service: ServiceName.Ingress, at: deps.now(), reason: `batch of ${file.id} for ${asked.endpoint}` },
        { endpoint: asked.endpoint, inputFileId: file.id, metadata: asked.metadata },
      );
      await deps.publish(created, request.sluice.traceparent);
      await deps.batches.create(record);
      request.log.info({ batch: record.id, file: file.id, endpoint: asked.endpoint }, 'batch created');
      return toBatchObject(record);
    });

    app.get<ListQuery>('/v1/batches', { onRequest: auth }, async (request) => {
      const limit = parseLimit(request.query.limit);
      const page = deps.batches.list(tenantOf(request), request.query.after || undefined, limit);
      const data = page.data.map(toBatchObject);
      return { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: page.hasMore };
    });

    app.get<ById>('/v1/batches/:id', { onRequest: auth }, async (request) => {
      const found = await deps.batches.get(tenantOf(request), request.params.id);
      if (!found) throw noSuchBatch(request.params.id);
      return toBatchObject(found.record);
    });

    app.post<ById>('/v1/batches/:id/cancel', { onRequest: auth }, async (request) => {
      const tenant = tenantOf(request);
      const { id } = request.params;
      // compare-and-set against the runner, which may move the batch at the same moment
      for (let i = 0; i < 20; i++) {
        const found = await deps.batches.get(tenant, id);
        if (!found) throw noSuchBatch(id);
        const { record, revision } = found;
        if (record.status === 'cancelling' || record.status === 'cancelled') return toBatchObject(record);
        if (record.status !== 'validating' && record.status !== 'in_progress') {
          throw new RequestRejected('batch_not_cancellable', `Cannot cancel a batch with status '${record.status}'.`, 'batch_id');
        }
        const cancelling: BatchRecord = { ...record, status: 'cancelling', cancelling_at: Math.floor(deps.now() / 1000) };
        if ((await deps.batches.write(cancelling, revision)) !== undefined) {
          request.log.info({ batch: id }, 'batch cancelling');
          return toBatchObject(cancelling);
        }
      }
      throw new RequestRejected('batch_not_cancellable', 'The batch is changing too fast to cancel; try again.', 'batch_id');
    });
  };
}

interface BatchAsk {
  inputFileId: string;
  endpoint: BatchEndpoint;
  metadata: Record<string, string> | null;
}

/** The checked body of `POST /v1/batches`. @throws RequestRejected invalid_request naming the field. */
function batchRequest(body: unknown): BatchAsk {
  if (!isJsonObject(body)) throw invalid('body', 'The request body must be a JSON object.');
  for (const key of ['input_file_id', 'endpoint', 'completion_window']) {
    if (body[key] === undefined || body[key] === null) throw invalid(key, `Missing required parameter: '${key}'.`);
  }
  const { input_file_id: inputFileId, endpoint, completion_window: window, metadata = null } = body;
  if (typeof inputFileId !== 'string') throw invalid('input_file_id', "Invalid type for 'input_file_id': expected a string.");
  if (!(BATCH_ENDPOINTS as readonly unknown[]).includes(endpoint)) {
    throw invalid('endpoint', `Invalid value for 'endpoint': expected one of ${BATCH_ENDPOINTS.join(', ')}.`);
  }
  if (window !== '24h') throw invalid('completion_window', "Invalid value for 'completion_window': only '24h' is supported.");
  if (metadata !== null && !validMetadata(metadata)) {
    throw invalid(
      'metadata',
      `Invalid 'metadata': expected at most ${MAX_METADATA_KEYS} string pairs, keys up to ${MAX_METADATA_KEY} and values up to ${MAX_METADATA_VALUE} characters.`,
    );
  }
  return { inputFileId, endpoint: endpoint as BatchEndpoint, metadata };
}

function validMetadata(m: unknown): m is Record<string, string> {
  if (!isJsonObject(m)) return false;
  const entries = Object.entries(m);
  return (
    entries.length <= MAX_METADATA_KEYS && entries.every(([k, v]) => k.length <= MAX_METADATA_KEY && typeof v === 'string' && v.length <= MAX_METADATA_VALUE)
  );
}

function parseLimit(raw: string | undefined): number {
  if (raw === undefined || raw === '') return DEFAULT_PAGE;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE) throw invalid('limit', `Invalid 'limit': expected an integer between 1 and ${MAX_PAGE}, got '${raw}'.`);
  return n;
}

function noSuchBatch(id: string): RequestRejected {
  return new RequestRejected('batch_not_found', `No batch found with id '${id}'.`, 'batch_id');
}

function newBatchId(): string {
  let id = 'batch_';
  for (const b of randomBytes(24)) id += BASE32[b & 31];
  return id;
}
