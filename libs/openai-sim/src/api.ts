import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, onRequestHookHandler } from 'fastify';
import { completionBody, planChat, type ChatPlan } from './completion.js';
import { embeddingsBody, planEmbeddings } from './embeddings.js';
import { type ApiError, apiError, isApiError, rateLimited, serverError } from './errors.js';
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
  app.post('/v1/chat/completions', { onRequest: countRequest }, (req, reply) => chat(state, req.body, reply));
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

async function chat(state: SimState, body: unknown, reply: FastifyReply): Promise<FastifyReply> {
  const requestId = newRequestId();
  const plan = planChat(body, state.modelSet);
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
  if (await writeStream(res, streamFrames(plan, id, created), tokenLatencyMs)) countCompletion(state, plan);
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

function fail(
  state: SimState,
  reply: FastifyReply,
  err: ApiError,
  requestId: string,
  headers: Record<string, string> = {},
): FastifyReply {
  state.stats.errors++;
  return reply
    .code(err.status)
    .headers(headers)
    .header('x-request-id', requestId)
    .type('application/json')
    .send(JSON.stringify(err.body));
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
