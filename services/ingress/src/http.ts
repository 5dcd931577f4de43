import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import {
  answerClientError,
  applyHttpLimits,
  ENDPOINT_OF_PATH,
  Errors,
  frameworkRefusal,
  HTTP_SERVER_OPTIONS,
  lingerOnClose,
  SluiceError,
  Subjects,
  type Endpoint,
  type HttpLimits,
  type RequestContext,
  type SluiceConfig,
  type SluiceEvent,
  type Tenant,
  type VirtualKey,
} from '@sluice/contracts';
import { metricsHandler, SpanAttributes, tagHttpServerSpan, withTrace } from '@sluice/telemetry';
import type { IngressDeps } from './deps.js';
import { rejectedEvent, requestedEvent } from './events.js';
import { answerStream, answerWhole, sendError, sendStored } from './http-answer.js';
import { asyncAsked, queuedNotice, webhookAsked } from './async.js';
import { batchRoutes } from './batch-routes.js';
import { fileRoutes } from './file-routes.js';
import { readJsonBody } from './http-body.js';
import { continueTrace, newRequestId } from './ids.js';
import { claimOrReplay, idempotencyKeyOf, requestFingerprint, type Claim } from './idempotency.js';
import { busUnavailable } from './unavailable.js';
import { repliesOf } from './inbox.js';
import { toModel, toModelList } from './openai-wire.js';
import { answerShedHttp } from './overload-shed.js';
import { RequestRejected } from './rejection.js';
import { checkFits } from './fits.js';
import { requestKey } from './keys.js';
import { authenticate, bearerKey, modelsFor } from './tenants.js';
import { validateRequest, type ChatHints } from './validate.js';

/** The OpenAI endpoints that go through the pipeline, by their paths. */
const ENDPOINT_PATHS: Readonly<Record<string, Endpoint>> = ENDPOINT_OF_PATH;
const ROUTES = `${Object.keys(ENDPOINT_PATHS)
  .map((path) => `POST ${path}`)
  .join(', ')}, GET /v1/models, GET /v1/models/{id} and GET /v1/sluice/requests/{id}/result`;
/** The IETF draft's header (draft-ietf-httpapi-idempotency-key-header), as Stripe and others take it. */
const IDEMPOTENCY_HEADER = 'idempotency-key';
/** A request id as ingress makes them (`newRequestId`): anything else is no stored result's. */
const REQUEST_ID = /^req_[a-z2-7]{20}$/;

/** What ingress learns about an HTTP request as it goes. */
interface RequestState {
  receivedAt: number;
  traceparent: string;
  tenant?: Tenant;
  /** The virtual key the request came with; undefined for a tenant's config key. */
  key?: VirtualKey;
  model?: string;
  user?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    sluice: RequestState;
  }
}

/**
 * The server limits from `ingress.http` (README, "Ingress HTTP"). The idle cut must come after
 * the deadline's 504: a request waiting for its answer moves no bytes until then.
 */
export function ingressHttpLimits(ingress: SluiceConfig['ingress']): HttpLimits {
  return { ...ingress.http, idleTimeoutMs: Math.max(ingress.http.idleTimeoutMs, ingress.defaultDeadlineMs + 1000) };
}

/**
 * The OpenAI-compatible HTTP front door. Every answer is OpenAI-shaped, errors included: fastify's
 * own error format never reaches a client. Every refusal of a chat request is published as
 * `chat.rejected` before the client hears of it (a request that timed out while its body was
 * arriving is answered 408 on the socket first). The server's limits come from `ingress.http`;
 * `startFrontDoors` re-applies them when the config changes.
 *
 * @example
 * const app = buildApp(deps);
 * await app.listen({ host: '127.0.0.1', port: 8080 });
 */
export function buildApp(deps: IngressDeps): FastifyInstance {
  const app = Fastify({
    // the assertion is needed (the rule misses generic inference): without it Fastify infers pino's Logger and the app is no FastifyInstance
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion
    loggerInstance: deps.log as FastifyBaseLogger,
    // one line per request on the hot path is ours to write, not fastify's two
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
    genReqId: () => newRequestId(),
    requestIdHeader: false,
    // fastify's own answers for these would not be OpenAI-shaped
    return503OnClosing: false,
    frameworkErrors: (error, _request, reply) => {
      const { code, message } = frameworkRefusal(error);
      void sendError(reply, code, message, Errors[code].status);
    },
    clientErrorHandler: answerClientError,
    // set once here, the rest by applyHttpLimits (node reads those live)
    http: HTTP_SERVER_OPTIONS,
    // no bodyLimit: fastify's is fixed at build and its parsers are removed; the one body parser
    // below enforces ingress.maxBodyBytes itself, read per request
  });
  applyHttpLimits(app.server, ingressHttpLimits(deps.config().ingress));
  // a connection closed after its answer is read until its client closes too (bounded), so an
  // answer to a request refused before its body was read reaches the client instead of a reset
  lingerOnClose(app.server);

  app.decorateRequest('sluice', null as unknown as RequestState);
  app.addHook('onRequest', async (request, reply) => {
    request.sluice = { receivedAt: deps.now(), traceparent: continueTrace(header(request.headers, 'traceparent')) };
    request.log = withTrace(deps.log, request.sluice.traceparent, { requestId: request.id });
    // x-request-id is what OpenAI sends (the SDKs expose it as _request_id); x-sluice-request-id stays for existing clients
    reply.header('x-request-id', request.id).header('x-sluice-request-id', request.id);
    // the HTTP server span is the trace's root: tagged so Jaeger finds it by x-sluice-request-id
    tagHttpServerSpan(request.method, request.routeOptions.url, { [SpanAttributes.requestId]: request.id });
  });

  // answered before its body was read whole (no key, no route, no JSON content type): the
  // connection ends after the answer, so what is left of the body is read within the linger's
  // bounds rather than for as long as the client sends it on a connection kept alive
  app.addHook('onSend', async (request, reply, payload) => {
    if (!request.raw.complete) reply.header('connection', 'close');
    return payload;
  });

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', (_request: FastifyRequest, payload: IncomingMessage) =>
    readJsonBody(payload, deps.config().ingress.maxBodyBytes),
  );

  const authenticated = async (request: FastifyRequest) => {
    const caller = authenticate(deps.tenants(), bearerKey(header(request.headers, 'authorization')), undefined, deps.keys(), deps.now());
    request.sluice.tenant = caller.tenant;
    if (caller.key) request.sluice.key = caller.key;
  };

  app.get('/healthz', async () => ({ status: 'ok' }));
  // Prometheus's scrape (docs/metrics.md): this process's own metrics, no tenant's answers or keys
  app.get('/metrics', metricsHandler);

  app.get('/v1/models', { onRequest: authenticated }, async (request) => toModelList(request.sluice.tenant!, deps.config(), request.sluice.key));

  // a wildcard, not `:id`: model ids may hold a slash (`org/model`)
  app.get<{ Params: { '*': string } }>('/v1/models/*', { onRequest: authenticated }, async (request, reply) => {
    const id = request.params['*'];
    if (!modelsFor(request.sluice.tenant!, deps.config(), request.sluice.key).includes(id)) {
      return sendError(reply, 'model_not_found', `The model ${JSON.stringify(id)} does not exist or you do not have access to it.`, 404, undefined, 'model');
    }
    return toModel(id);
  });

  // the answer of a request answered later (held in maintenance), for the tenant that sent it
  app.get<{ Params: { id: string } }>('/v1/sluice/requests/:id/result', { onRequest: authenticated }, async (request, reply) => {
    const { id } = request.params;
    const stored = REQUEST_ID.test(id) ? await deps.result(request.sluice.tenant!.id, id) : undefined;
    if (!stored) return sendError(reply, 'result_not_found', Errors.result_not_found.message, Errors.result_not_found.status, undefined, 'id');
    return sendStored(reply, stored);
  });

  void app.register(fileRoutes(deps), { auth: authenticated });
  void app.register(batchRoutes(deps), { auth: authenticated });

  for (const [path, endpoint] of Object.entries(ENDPOINT_PATHS)) {
    app.post(path, { onRequest: authenticated }, async (request, reply) => answerRequest(deps, endpoint, request, reply));
  }

  app.setNotFoundHandler(async (request, reply) =>
    sendError(reply, 'not_found', `No route ${request.method} ${request.url.split('?')[0]}; Sluice serves ${ROUTES}.`, 404),
  );

  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    const rejection = asRejection(error);
    if (!rejection) {
      const e = error instanceof SluiceError ? error : new SluiceError('internal_error');
      request.log.error({ err: error }, 'request failed');
      return sendError(reply, e.code, e.message, e.status, e.retryAfterMs);
    }
    const state = request.sluice;
    request.log.info({ code: rejection.code, param: rejection.param, tenant: state?.tenant?.id }, 'request rejected');
    if (isPipelineRoute(request) && state) {
      reply.header('x-sluice-cache', 'miss');
      const facts = {
        tenant: state.tenant?.id,
        receivedAt: state.receivedAt,
        ...(state.model ? { model: state.model } : {}),
        ...(state.user ? { user: state.user } : {}),
      };
      try {
        await deps.publish(rejectedEvent(request.id, rejection, facts, deps.now()), state.traceparent);
      } catch (err) {
        // the client still gets its answer; the stream is what failed
        request.log.error({ err }, 'could not publish chat.rejected');
      }
    }
    return sendError(reply, rejection.code, rejection.message, rejection.status, undefined, rejection.param);
  });

  return app;
}

/**
 * One request through the pipeline: validated and counted, published as `chat.requested`, then
 * answered from its replies. A client that leaves after the publish and before its answer ended
 * gets its request cancelled (`deps.cancel`), so the upstream call stops and only what was
 * streamed is billed; unless it sent an `Idempotency-Key`: then the request runs on, its answer is
 * stored on its result subject, and a retry with the same key and body gets that answer
 * (idempotency.ts) instead of running again.
 */
async function answerRequest(deps: IngressDeps, endpoint: Endpoint, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const state = request.sluice;
  const tenant = state.tenant!;
  const config = deps.config();
  reply.header('x-sluice-cache', 'miss');
  // before validation (its token count is the costly part): a shed request costs next to nothing
  const place = deps.overload.enter(deps.now());
  if (place.kind === 'shed') return answerShedHttp(deps, reply, place, request.id, { tenant: tenant.id, receivedAt: state.receivedAt }, state.traceparent);
  // the response's close comes once whatever ends it: the answer, an error, the client leaving
  reply.raw.once('close', place.release);
  // a client that left before the handler ran: its close has fired already and will not again
  if (reply.raw.destroyed) place.release();
  const {
    request: chat,
    body,
    includeUsage,
    tokenBudget,
    lane,
  } = await validateRequest(endpoint, request.body, hintsFrom(request.headers), tenant, config, state.key);
  state.model = chat.model;
  if (chat.user !== undefined) state.user = chat.user;

  const deadline = state.receivedAt + config.ingress.defaultDeadlineMs;
  const later = asyncAsked(header(request.headers, 'x-sluice-async'), 'x-sluice-async', chat.stream);
  const webhook = webhookAsked(header(request.headers, 'x-sluice-webhook'), 'x-sluice-webhook', later, tenant.id, config, state.key?.webhook);
  const idempotencyKey = idempotencyKeyOf(header(request.headers, IDEMPOTENCY_HEADER), IDEMPOTENCY_HEADER);
  // an async request answers on its result subject; any other on an inbox
  const replyTo = later ? Subjects.result(request.id) : deps.inbox.subjectFor(request.id);
  const ctx: RequestContext = { request: chat, replyTo, frontDoor: 'http', receivedAt: state.receivedAt, deadline };
  if (state.key) ctx.key = requestKey(state.key);
  if (webhook !== undefined) ctx.webhook = webhook;
  if (idempotencyKey !== undefined) ctx.keepResult = true;
  const event = requestedEvent(request.id, tenant.id, ctx, body, tokenBudget, lane.reason);
  // a chunked body has no Content-Length: checkFits then measures the event itself
  const declared = Number(request.headers['content-length']);
  checkFits(event, Number.isFinite(declared) ? declared : undefined, deps.maxPayload());

  // frees the idempotency key when the request it names never goes out
  let release: (() => Promise<void>) | undefined;
  if (idempotencyKey !== undefined) {
    const mine = { requestId: request.id, fingerprint: requestFingerprint(endpoint, request.body), deadline };
    // a retry waiting for an earlier try stops when its client leaves, and takes nothing over
    const gone = new AbortController();
    const left = () => {
      if (!reply.raw.writableEnded) gone.abort();
    };
    reply.raw.once('close', left);
    if (reply.raw.destroyed) left();
    const claim = await claimOrReplay(deps, tenant.id, idempotencyKey, mine, IDEMPOTENCY_HEADER, { log: request.log, clientGone: gone.signal });
    reply.raw.off('close', left);
    if (claim.kind === 'left') {
      request.log.info('client left while its retry waited for an earlier try; nothing claimed, nothing published');
      return reply.hijack();
    }
    if (claim.kind === 'replay') return answerReplay(request, reply, claim, endpoint, chat.stream, includeUsage);
    release = claim.release;
  }
  if (later) return answerLater(deps, request, reply, event, release);
  // listened to before publishing: the answer can come back before the publish ack does
  const pending = deps.inbox.listen(request.id, deadline);

  if (reply.raw.destroyed || !request.raw.socket || request.raw.socket.destroyed) {
    // left while the body was being counted (or its retry waited): nothing was published, so
    // there is nothing to stop; a key it claimed goes back, or every later retry would wait for
    // an answer this request never gets until its deadline
    pending.close();
    await release?.().catch((err: unknown) => request.log.warn({ err }, 'could not give back the Idempotency-Key of a request never sent'));
    request.log.debug('client left before its request was published');
    return reply.hijack();
  }
  let published = false;
  let left = false;
  // a request with an idempotency key runs on when its client leaves: its answer is stored for the retry
  const stop = () => (ctx.keepResult ? request.log.info('client left; the answer is kept for a retry with its Idempotency-Key') : deps.cancel(request.id));
  reply.raw.on('close', () => {
    pending.close();
    // ended by us (answered, an error, the deadline) is not a client that left
    if (reply.raw.writableEnded) return;
    left = true;
    if (published) stop();
  });
  try {
    await deps.publish(event, state.traceparent);
  } catch (err) {
    pending.close();
    // the key is kept: a publish that was not acked may still be stored (the connection sends what
    // it held when it reconnects), and a retry that took the key would run the request twice
    request.log.error({ err }, 'could not publish chat.requested');
    throw busUnavailable('The request could not be queued');
  }
  published = true;
  if (left) stop();
  request.log.debug({ tenant: tenant.id, endpoint, model: chat.model, stream: chat.stream }, 'chat requested');
  if (chat.stream) return answerStream(request, reply, pending, { endpoint, requestId: request.id, includeUsage });
  return answerWhole(request, reply, pending);
}

/**
 * An async request (`x-sluice-async: true`): its `queued` notice stored on its result subject,
 * then `chat.requested` with that subject as its reply-to, then 202 with where to fetch the answer.
 * Nothing waits here: the client leaving changes nothing.
 */
async function answerLater(
  deps: IngressDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  event: SluiceEvent<'chat.requested'>,
  release: (() => Promise<void>) | undefined,
): Promise<FastifyReply> {
  const notice = queuedNotice(request.id, deps.now());
  let sent = false;
  try {
    await deps.storeNotice(event.tenant, notice);
    sent = true;
    await deps.publish(event, request.sluice.traceparent);
  } catch (err) {
    // the key is freed only when the request never went out (see answerRequest)
    if (!sent) await release?.().catch(() => undefined);
    request.log.error({ err }, 'could not queue an async request');
    throw busUnavailable('The request could not be queued');
  }
  request.log.debug({ tenant: event.tenant, model: event.data.ctx.request.model }, 'async request queued');
  return sendStored(reply, notice);
}

/**
 * A retry with the `Idempotency-Key` of a request that was answered: that answer again, as the
 * first try would have had it (whole, or replayed as a stream), under the first try's request id,
 * with `Idempotent-Replayed: true`. Nothing is published: the retry costs nothing upstream.
 */
function answerReplay(
  request: FastifyRequest,
  reply: FastifyReply,
  claim: Extract<Claim, { kind: 'replay' }>,
  endpoint: Endpoint,
  stream: boolean,
  includeUsage: boolean,
): Promise<FastifyReply> {
  request.log.info({ replayed: claim.requestId }, 'answered with the stored answer of the same Idempotency-Key');
  reply.header('x-request-id', claim.requestId).header('x-sluice-request-id', claim.requestId).header('idempotent-replayed', 'true');
  const stored = repliesOf(claim.reply);
  return stream ? answerStream(request, reply, stored, { endpoint, requestId: claim.requestId, includeUsage }) : answerWhole(request, reply, stored);
}

function isPipelineRoute(request: FastifyRequest): boolean {
  return Object.prototype.hasOwnProperty.call(ENDPOINT_PATHS, request.routeOptions.url ?? '');
}

/** Fastify's own refusals, in the catalogue's terms. */
function asRejection(error: FastifyError): RequestRejected | undefined {
  if (error instanceof RequestRejected) return error;
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new RequestRejected('body_too_large', undefined, 'body');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new RequestRejected('invalid_json', undefined, 'body');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new RequestRejected('invalid_request', 'The request body must be JSON sent with "Content-Type: application/json".', 'content-type');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new RequestRejected('invalid_request', 'The Content-Length header does not match the body.', 'content-length');
  }
  if (error instanceof SyntaxError) return new RequestRejected('invalid_json', undefined, 'body');
  if (!(error instanceof SluiceError) && typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
    return new RequestRejected('invalid_request', 'The request could not be read as an HTTP request Sluice serves.');
  }
  return undefined;
}

function hintsFrom(headers: IncomingHttpHeaders): ChatHints {
  const hints: ChatHints = {};
  for (const [key, name] of [
    ['feature', 'x-sluice-feature'],
    ['priority', 'x-sluice-priority'],
    ['cache', 'x-sluice-cache'],
    ['cacheTtl', 'x-sluice-cache-ttl'],
    ['cacheNamespace', 'x-sluice-cache-namespace'],
  ] as const) {
    const value = header(headers, name);
    if (value !== undefined) hints[key] = { value: value.trim(), param: name };
  }
  return hints;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}
