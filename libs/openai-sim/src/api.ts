import { createHash, randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, onRequestHookHandler } from 'fastify';
import { completionBody, planChat, type ChatPlan } from './completion.js';
import { embeddingsBody, planEmbeddings } from './embeddings.js';
import { type ApiError, apiError, invalidRequest, isApiError, rateLimited, serverError } from './errors.js';
import { MAX_IDEMPOTENCY_KEY } from './idempotency.js';
import { type Admission, formatDuration } from './limits.js';
import type { SimState } from './state.js';
import { streamFrames, waitUnlessClosed, writeStream } from './stream.js';

type Rejection = Exclude<Admission, { ok: true }>;

// An arbitrary fixed epoch second, so /v1/models is byte-identical across runs.
const MODEL_CREATED = 1_715_367_049;
// A request bigger than a whole bucket can never fit; suggest a full window.
const NEVER_FITS_RETRY_MS = 60_000;

/** Registers the OpenAI-compatible /v1 routes. */
export function registerApi(app: FastifyInstance, state: SimState): void {
  // Counted before body parsing so that malformed bodies still show in `requests`.
  const countRequest: onRequestHookHandler = (_req, _reply, done) => {
    state.stats.requests++;
    done();
  };
  app.post('/v1/chat/completions', { onRequest: countRequest }, (req, reply) => chatOnce(state, req.body, req.headers['idempotency-key'], reply));
  app.post('/v1/embeddings', { onRequest: countRequest }, (req, reply) => embeddings(state, req.body, reply));

  const models = state.models.map((id) => ({ id, object: 'model', created: MODEL_CREATED, owned_by: 'system' }));
  const list = JSON.stringify({ object: 'list', data: models });
  app.get('/v1/models', (_req, reply) => reply.type('application/json').send(list));
  app.get<{ Params: { model: string } }>('/v1/models/:model', (req, reply) => {
    const m = models.find((x) => x.id === req.params.model);
    if (m !== undefined) return reply.send(m);
    const err = apiError(404, `The model '${req.params.model}' does not exist`, 'invalid_request_error', 'model', 'model_not_found');
    return reply.code(err.status).send(err.body);
  });
}

/** What a repeat under the same Idempotency-Key is answered with. */
export interface ServedChat {
  plan: ChatPlan;
  id: string;
  created: number;
  requestId: string;
}

/** `chat`, honouring an Idempotency-Key (see idempotency.ts). */
async function chatOnce(state: SimState, body: unknown, key: string | string[] | undefined, reply: FastifyReply): Promise<FastifyReply> {
  if (key === undefined) return chat(state, body, reply);
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY) {
    const err = invalidRequest(`Idempotency-Key must be one header of 1 to ${MAX_IDEMPOTENCY_KEY} characters.`, null, 'invalid_idempotency_key');
    return fail(state, reply, err, newRequestId());
  }
  const fingerprint = createHash('sha256')
    .update(JSON.stringify(body) ?? '')
    .digest('base64url');
  const claim = await state.idempotency.claim(key, fingerprint, Date.now);
  switch (claim.kind) {
    case 'replay':
      return replay(state, reply, claim.answer);
    case 'mismatch': {
      const err = apiError(
        422,
        'This Idempotency-Key was already used with a different request body.',
        'invalid_request_error',
        null,
        'idempotency_key_reused',
      );
      return fail(state, reply, err, newRequestId());
    }
    case 'fresh':
      try {
        return await chat(state, body, reply, claim.complete);
      } finally {
        // no-op after complete: only answers served in full are kept
        claim.release();
      }
    default: {
      const _exhaustive: never = claim;
      return _exhaustive;
    }
  }
}

/** Answers again exactly as the first time, without serving, charging or rate-limiting anything. */
async function replay(state: SimState, reply: FastifyReply, served: ServedChat): Promise<FastifyReply> {
  state.stats.replays++;
  const { plan, id, created, requestId } = served;
  const headers = { ...state.limitHeaders(), 'x-request-id': requestId, 'idempotent-replayed': 'true' };
  if (!plan.stream)
    return reply
      .headers(headers)
      .type('application/json')
      .send(JSON.stringify(completionBody(plan, id, created)));
  reply.hijack();
  reply.raw.writeHead(200, { ...headers, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
  await writeStream(reply.raw, streamFrames(plan, id, created), 0);
  return reply;
}

async function chat(state: SimState, body: unknown, reply: FastifyReply, served?: (answer: ServedChat) => void): Promise<FastifyReply> {
  const requestId = newRequestId();
  const plan = planChat(body, state.modelSet, (m) => state.contextWindow(m));
  if (isApiError(plan)) return fail(state, reply, plan, requestId);
  // The answer is known up front, so the token bucket is charged its exact size.
  const admission = state.admit(plan.promptTokens + plan.completionTokens);
  if (!admission.ok) return throttle(state, reply, admission, plan.model, requestId);

  const fault = state.nextFault();
  if (fault === 'timeout') return hang(state, reply);
  const { latencyMs, tokenLatencyMs } = state.faults;
  if (latencyMs > 0 && !(await waitUnlessClosed(reply.raw, latencyMs))) return abandon(reply);
  if (fault === 'error') return fail(state, reply, serverError(requestId), requestId, admission.headers);

  const id = `chatcmpl-${randomUUID().replaceAll('-', '')}`;
  const created = Math.floor(Date.now() / 1000);
  if (!plan.stream) {
    countCompletion(state, plan);
    served?.({ plan, id, created, requestId });
    return reply
      .headers(admission.headers)
      .header('x-request-id', requestId)
      .type('application/json')
      .send(JSON.stringify(completionBody(plan, id, created)));
  }

  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    ...admission.headers,
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    'x-request-id': requestId,
  });
  // A stream cut off by the client is not counted: it was not served in full,
  // and the caller cannot know how much of it to bill either.
  if (await writeStream(res, streamFrames(plan, id, created), tokenLatencyMs)) {
    countCompletion(state, plan);
    served?.({ plan, id, created, requestId });
  }
  return reply;
}

async function embeddings(state: SimState, body: unknown, reply: FastifyReply): Promise<FastifyReply> {
  const requestId = newRequestId();
  const plan = planEmbeddings(body, state.modelSet);
  if (isApiError(plan)) return fail(state, reply, plan, requestId);
  const admission = state.admit(plan.promptTokens);
  if (!admission.ok) return throttle(state, reply, admission, plan.model, requestId);
  const { latencyMs } = state.faults;
  if (latencyMs > 0 && !(await waitUnlessClosed(reply.raw, latencyMs))) return abandon(reply);

  state.stats.embeddings++;
  state.stats.embeddingTokens += plan.promptTokens;
  return reply
    .headers(admission.headers)
    .header('x-request-id', requestId)
    .type('application/json')
    .send(JSON.stringify(embeddingsBody(plan)));
}

function countCompletion(state: SimState, plan: ChatPlan): void {
  const s = state.stats;
  s.completions++;
  s.promptTokens += plan.promptTokens;
  s.completionTokens += plan.completionTokens;
  s.totalTokens += plan.promptTokens + plan.completionTokens;
}

function fail(state: SimState, reply: FastifyReply, err: ApiError, requestId: string, headers: Record<string, string> = {}): FastifyReply {
  state.stats.errors++;
  return reply.code(err.status).headers(headers).header('x-request-id', requestId).type('application/json').send(JSON.stringify(err.body));
}

function throttle(state: SimState, reply: FastifyReply, r: Rejection, model: string, requestId: string): FastifyReply {
  state.stats.throttled++;
  const waitMs = Number.isFinite(r.retryAfterMs) ? r.retryAfterMs : NEVER_FITS_RETRY_MS;
  const err = rateLimited(r.kind, model, r.limit, r.used, r.requested, formatDuration(waitMs));
  return reply
    .code(429)
    .headers(r.headers)
    .header('retry-after', String(Math.max(1, Math.ceil(waitMs / 1000))))
    .header('retry-after-ms', String(Math.max(1, Math.ceil(waitMs))))
    .header('x-request-id', requestId)
    .type('application/json')
    .send(JSON.stringify(err.body));
}

/** Accepts the request and never answers; the socket is freed when either side closes. */
function hang(state: SimState, reply: FastifyReply): FastifyReply {
  state.stats.timeouts++;
  reply.hijack();
  const res = reply.raw;
  state.held.add(res);
  res.once('close', () => state.held.delete(res));
  return reply;
}

/** The client left during the latency wait: there is nobody to answer. */
function abandon(reply: FastifyReply): FastifyReply {
  reply.hijack();
  return reply;
}

function newRequestId(): string {
  return `req_${randomUUID().replaceAll('-', '')}`;
}
