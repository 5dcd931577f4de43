import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import { type Answer, chatAnswer } from './answer.js';
import { AZURE_ROUTES, azureBody } from './azure.js';
import { planChat } from './completion.js';
import { embeddingsBody, planEmbeddings } from './embeddings.js';
import { type ApiError, apiError, invalidRequest, isApiError, rateLimited, serverError } from './errors.js';
import { MAX_IDEMPOTENCY_KEY } from './idempotency.js';
import { responseAnswer } from './response-body.js';
import { planResponse } from './responses.js';
import { formatDuration } from '@sluice/contracts';
import { type Admission } from './limits.js';
import type { SimState } from './state.js';
import { waitUnlessClosed, writeStream } from './stream.js';

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
  app.post('/v1/chat/completions', { onRequest: countRequest }, (req, reply) =>
    serveOnce(state, 'chat', req.body, req.headers['idempotency-key'], reply, () => planChatAnswer(state, req.body)),
  );
  app.post('/v1/responses', { onRequest: countRequest }, (req, reply) =>
    serveOnce(state, 'responses', req.body, req.headers['idempotency-key'], reply, () => planResponseAnswer(state, req.body)),
  );
  app.post('/v1/embeddings', { onRequest: countRequest }, (req, reply) => embeddings(state, req.body, reply));

  // Azure OpenAI's paths (azure.ts): the same answers, once the key, the api-version and the deployment are read
  type Azure = { Params: { deployment?: string } };
  const azure = (req: FastifyRequest<Azure>, reply: FastifyReply, then: (body: unknown) => Promise<FastifyReply> | FastifyReply) => {
    const body = azureBody(req.query, req.headers, req.body, req.params.deployment);
    return isApiError(body) ? fail(state, reply, body, newRequestId()) : then(body);
  };
  const key = (req: FastifyRequest) => req.headers['idempotency-key'];
  app.post<Azure>(AZURE_ROUTES.chat, { onRequest: countRequest }, (req, reply) =>
    azure(req, reply, (body) => serveOnce(state, 'chat', body, key(req), reply, () => planChatAnswer(state, body))),
  );
  app.post<Azure>(AZURE_ROUTES.responses, { onRequest: countRequest }, (req, reply) =>
    azure(req, reply, (body) => serveOnce(state, 'responses', body, key(req), reply, () => planResponseAnswer(state, body))),
  );
  app.post<Azure>(AZURE_ROUTES.embeddings, { onRequest: countRequest }, (req, reply) => azure(req, reply, (body) => embeddings(state, body, reply)));

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
export interface Served {
  answer: Answer;
  requestId: string;
}

/** Serves an answer planned by `plan`, honouring an Idempotency-Key (see idempotency.ts). */
async function serveOnce(
  state: SimState,
  route: string,
  body: unknown,
  key: string | string[] | undefined,
  reply: FastifyReply,
  plan: () => Answer | ApiError,
): Promise<FastifyReply> {
  if (key === undefined) return serve(state, reply, plan());
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY) {
    const err = invalidRequest(`Idempotency-Key must be one header of 1 to ${MAX_IDEMPOTENCY_KEY} characters.`, null, 'invalid_idempotency_key');
    return fail(state, reply, err, newRequestId());
  }
  // The route is part of the fingerprint: one key sent to two endpoints is two different requests.
  const fingerprint = createHash('sha256')
    .update(`${route}\0${JSON.stringify(body) ?? ''}`)
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
        return await serve(state, reply, plan(), claim.complete);
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
async function replay(state: SimState, reply: FastifyReply, served: Served): Promise<FastifyReply> {
  state.stats.replays++;
  const { answer, requestId } = served;
  const headers = { ...state.limitHeaders(), 'x-request-id': requestId, 'idempotent-replayed': 'true' };
  if (!answer.stream) return reply.headers(headers).type('application/json').send(JSON.stringify(answer.body()));
  reply.hijack();
  reply.raw.writeHead(200, { ...headers, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
  await writeStream(reply.raw, answer.frames(), 0);
  return reply;
}

/**
 * Serves a planned answer: rate limits → fault draw → latency → the answer,
 * whole or streamed. Once it was served in full (a stream written through its
 * last frame) it is counted, its `served` hook runs, and `remember` keeps it
 * for idempotent replays.
 */
async function serve(state: SimState, reply: FastifyReply, planned: Answer | ApiError, remember?: (s: Served) => void): Promise<FastifyReply> {
  const requestId = newRequestId();
  if (isApiError(planned)) return fail(state, reply, planned, requestId);
  const answer = planned;
  // The answer is known up front, so the token bucket is charged its exact size.
  const admission = state.admit(answer.promptTokens + answer.completionTokens);
  if (!admission.ok) return throttle(state, reply, admission, answer.model, requestId);

  const fault = state.nextFault();
  if (fault === 'timeout') return hang(state, reply);
  const { latencyMs, tokenLatencyMs } = state.faults;
  if (latencyMs > 0 && !(await waitUnlessClosed(reply.raw, latencyMs))) return abandon(state, reply, answer);
  if (fault === 'error') return fail(state, reply, serverError(requestId), requestId, admission.headers);

  if (!answer.stream) {
    countServed(state, answer);
    remember?.({ answer, requestId });
    return reply.headers(admission.headers).header('x-request-id', requestId).type('application/json').send(JSON.stringify(answer.body()));
  }

  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    ...admission.headers,
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    'x-request-id': requestId,
  });
  const outcome = await writeStream(res, answer.frames(), tokenLatencyMs);
  // A stream cut off by the client is not counted as served: the caller cannot
  // know how much of it to bill. It is counted as aborted, with what it did not send.
  if (outcome.kind === 'cut') {
    countAborted(state, outcome.unsentTokens);
    return reply;
  }
  countServed(state, answer);
  remember?.({ answer, requestId });
  return reply;
}

async function embeddings(state: SimState, body: unknown, reply: FastifyReply): Promise<FastifyReply> {
  const requestId = newRequestId();
  const plan = planEmbeddings(body, state.modelSet);
  if (isApiError(plan)) return fail(state, reply, plan, requestId);
  const admission = state.admit(plan.promptTokens);
  if (!admission.ok) return throttle(state, reply, admission, plan.model, requestId);
  const { latencyMs } = state.faults;
  if (latencyMs > 0 && !(await waitUnlessClosed(reply.raw, latencyMs))) return abandon(state, reply);

  state.stats.embeddings++;
  state.stats.embeddingTokens += plan.promptTokens;
  return reply
    .headers(admission.headers)
    .header('x-request-id', requestId)
    .type('application/json')
    .send(JSON.stringify(embeddingsBody(plan)));
}

/** Counts an answer served in full: its `served` hook, `completions` and the token fields. */
export function countServed(state: SimState, answer: Answer): void {
  answer.served?.();
  const s = state.stats;
  s.completions++;
  s.promptTokens += answer.promptTokens;
  s.completionTokens += answer.completionTokens;
  s.totalTokens += answer.promptTokens + answer.completionTokens;
}

function countAborted(state: SimState, unsentTokens: number): void {
  state.stats.aborted++;
  state.stats.abortedTokens += unsentTokens;
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

/** The client left during the latency wait: there is nobody to answer. A stream it asked for counts as aborted, unsent whole. */
function abandon(state: SimState, reply: FastifyReply, answer?: Answer): FastifyReply {
  if (answer?.stream === true) countAborted(state, answer.completionTokens);
  reply.hijack();
  return reply;
}

/** Validates a chat completions body and plans its answer under a new `chatcmpl-` id. */
export function planChatAnswer(state: SimState, body: unknown): Answer | ApiError {
  const plan = planChat(body, state.modelSet, (m) => state.contextWindow(m));
  if (isApiError(plan)) return plan;
  return chatAnswer(plan, `chatcmpl-${randomUUID().replaceAll('-', '')}`, Math.floor(Date.now() / 1000));
}

/** Validates a Responses body and plans its answer under a new `resp_` id; serving it stores the response. */
export function planResponseAnswer(state: SimState, body: unknown): Answer | ApiError {
  const plan = planResponse(
    body,
    state.modelSet,
    (m) => state.contextWindow(m),
    (prev) => state.recallResponse(prev),
  );
  if (isApiError(plan)) return plan;
  const id = `resp_${randomBytes(24).toString('hex')}`;
  const served = (): void => {
    state.stats.responses++;
    if (plan.store) state.rememberResponse(id, plan.conversation);
  };
  return { ...responseAnswer(plan, id, Math.floor(Date.now() / 1000)), served };
}

function newRequestId(): string {
  return `req_${randomUUID().replaceAll('-', '')}`;
}
