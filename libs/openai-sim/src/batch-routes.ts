import type { FastifyInstance } from 'fastify';
import { BATCH_ENDPOINTS, type BatchEndpoint } from './batch-input.js';
import { apiError, type ApiError, invalidRequest } from './errors.js';
import { noSuchFile, parseLimit, send } from './file-routes.js';
import type { SimState } from './state.js';
import { isRecord, pageOf } from './util.js';
import type { BatchRequest } from './batches.js';

type ById = { Params: { id: string } };
type ListQuery = { Querystring: { limit?: string; after?: string } };

const DEFAULT_BATCH_PAGE = 20;
const MAX_BATCH_PAGE = 100;
// OpenAI's metadata limits: 16 pairs, keys up to 64 characters, values up to 512.
const MAX_METADATA_KEYS = 16;
const MAX_METADATA_KEY = 64;
const MAX_METADATA_VALUE = 512;

/**
 * Registers the Batch API: `POST /v1/batches`, `GET /v1/batches` (cursor pages, newest first:
 * `limit` default 20, at most 100, `after`), `GET /v1/batches/:id` and `POST /v1/batches/:id/cancel`.
 * How a batch runs is batches.ts; a request the API refuses outright is a 400 (or a 404 for an
 * unknown input file), problems inside the input file make the batch `failed` instead.
 */
export function registerBatches(app: FastifyInstance, state: SimState): void {
  app.post('/v1/batches', (req, reply) => {
    const request = batchRequest(state, req.body);
    if ('status' in request) return send(reply, request);
    const { batchDelayMs, batchWindowMs } = state.faults;
    return reply.send(state.batches.create(request, { delayMs: batchDelayMs, windowMs: batchWindowMs }));
  });

  app.get<ListQuery>('/v1/batches', (req, reply) => {
    const limit = parseLimit(req.query.limit, DEFAULT_BATCH_PAGE, MAX_BATCH_PAGE);
    if (typeof limit !== 'number') return send(reply, limit);
    return reply.send(pageOf(state.batches.all(), req.query.after, limit, (b) => b.object));
  });

  app.get<ById>('/v1/batches/:id', (req, reply) => {
    const b = state.batches.get(req.params.id);
    return b === undefined ? send(reply, noSuchBatch(req.params.id)) : reply.send(b);
  });

  app.post<ById>('/v1/batches/:id/cancel', (req, reply) => {
    const b = state.batches.cancel(req.params.id);
    if (b === undefined) return send(reply, noSuchBatch(req.params.id));
    if ('notCancellable' in b)
      return send(reply, apiError(409, `Cannot cancel a batch with status '${b.notCancellable}'.`, 'invalid_request_error', null, 'batch_not_cancellable'));
    return reply.send(b);
  });
}

/** The checked body of `POST /v1/batches`, or the error OpenAI answers it with. */
function batchRequest(state: SimState, body: unknown): BatchRequest | ApiError {
  if (!isRecord(body)) return invalidRequest('The request body must be a JSON object.');
  for (const key of ['input_file_id', 'endpoint', 'completion_window']) {
    if (body[key] === undefined || body[key] === null) return invalidRequest(`Missing required parameter: '${key}'.`, key, 'missing_required_parameter');
  }
  const { input_file_id: inputFileId, endpoint, completion_window: window, metadata = null } = body;
  if (!BATCH_ENDPOINTS.includes(endpoint as BatchEndpoint)) {
    return invalidRequest(`Invalid value for 'endpoint': expected one of ${BATCH_ENDPOINTS.join(', ')}.`, 'endpoint', 'invalid_value');
  }
  if (window !== '24h') return invalidRequest("Invalid value for 'completion_window': only '24h' is supported.", 'completion_window', 'invalid_value');
  if (metadata !== null && !validMetadata(metadata)) {
    return invalidRequest(
      `Invalid 'metadata': expected at most ${MAX_METADATA_KEYS} string pairs, keys up to ${MAX_METADATA_KEY} and values up to ${MAX_METADATA_VALUE} characters.`,
      'metadata',
      'invalid_value',
    );
  }
  if (typeof inputFileId !== 'string') return invalidRequest("Invalid type for 'input_file_id': expected a string.", 'input_file_id', 'invalid_type');
  const file = state.files.get(inputFileId);
  if (file === undefined) return noSuchFile(inputFileId, 'input_file_id');
  if (file.purpose !== 'batch') {
    return invalidRequest(`The input file ${inputFileId} must be uploaded with purpose 'batch', not '${file.purpose}'.`, 'input_file_id', 'invalid_value');
  }
  return { inputFileId, endpoint: endpoint as BatchEndpoint, metadata };
}

function validMetadata(m: unknown): m is Record<string, string> {
  if (!isRecord(m)) return false;
  const entries = Object.entries(m);
  return (
    entries.length <= MAX_METADATA_KEYS && entries.every(([k, v]) => k.length <= MAX_METADATA_KEY && typeof v === 'string' && v.length <= MAX_METADATA_VALUE)
  );
}

function noSuchBatch(id: string): ApiError {
  return apiError(404, `No batch found with id '${id}'.`, 'invalid_request_error', 'batch_id', 'not_found');
}
