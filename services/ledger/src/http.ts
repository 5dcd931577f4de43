import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyServerOptions } from 'fastify';
import {
  answerClientError,
  applyHttpLimits,
  Errors,
  frameworkRefusal,
  HTTP_SERVER_OPTIONS,
  openAiErrorBody,
  type ErrorCode,
  type HttpLimits,
} from '@sluice/contracts';
import type { Db } from './db.js';
import { BadParam, parseCostsQuery, parseSloQuery } from './params.js';
import { costs } from './costs.js';
import { slo } from './slo.js';
import { requestReport } from './timeline.js';
import { readPosition } from './store.js';

export interface AppDeps {
  db: Db;
  /** Name of the position row the projector writes. */
  positionName: string;
  /** The event stream's last sequence, so callers can tell how far behind the ledger is. */
  streamLastSeq?: () => Promise<number>;
  now?: () => number;
  logger?: FastifyServerOptions['loggerInstance'];
  /** Overrides of LEDGER_HTTP (tests use short timeouts). */
  http?: Partial<HttpLimits>;
}

/**
 * The ledger's HTTP edges: a GET-only read API for dashboards and scripts, so a request is its
 * headers, and a second-long wait for them is already a broken client. The keep-alive outlasts a
 * load balancer's 60 s idle timeout, so the balancer closes first. The idle cut comes after
 * HANDLER_TIMEOUT_MS, so a slow query is answered 504 before its socket goes.
 */
const LEDGER_HTTP: HttpLimits = {
  requestTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  keepAliveTimeoutMs: 72_000,
  idleTimeoutMs: 60_000,
  maxConnections: 256,
};

/** A query still running after this is answered 504 `deadline_exceeded` (the query runs on). */
const HANDLER_TIMEOUT_MS = 30_000;

/** Request ids are 24 characters (`req_` + 20); a longer path segment is answered 404 unread. */
export const MAX_ID_LENGTH = 128;

/** The catalogue's OpenAI-shaped error body, with the offending parameter when there is one. */
function errorBody(code: ErrorCode, message: string, param?: string) {
  return openAiErrorBody(code, message, undefined, param ?? null);
}

/**
 * The ledger's read API. The caller listens; tests use `app.inject()`.
 *
 * @example
 * const app = buildApp({ db, positionName: 'ledger' });
 * const res = await app.inject({ url: '/v1/costs?groupBy=tenant,model' });
 */
export function buildApp(deps: AppDeps): FastifyInstance {
  const now = deps.now ?? Date.now;
  const app = Fastify({
    // a line per request would drown the log: tests and dashboards poll these endpoints
    ...(deps.logger ? { loggerInstance: deps.logger, logController: new LogController({ disableRequestLogging: true }) } : { logger: false }),
    // every answer is in the catalogue's shape, fastify's own included
    clientErrorHandler: answerClientError,
    frameworkErrors: (error, _request, reply) => {
      const refusal =
        error.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? { code: 'not_found' as const, message: `The ledger has no request with an id that long (ids are at most ${MAX_ID_LENGTH} characters).` }
          : frameworkRefusal(error);
      void (reply as FastifyReply).status(Errors[refusal.code].status).send(errorBody(refusal.code, refusal.message));
    },
    // served while closing: the database closes only after the server has
    return503OnClosing: false,
    http: HTTP_SERVER_OPTIONS,
    routerOptions: { maxParamLength: MAX_ID_LENGTH },
    handlerTimeout: HANDLER_TIMEOUT_MS,
  });
  applyHttpLimits(app.server, { ...LEDGER_HTTP, ...deps.http });
  // no route takes a body, so no body is parsed (bodyLimit never applies): a POST is a 404 and
  // node reads its body off the wire and drops it
  app.removeAllContentTypeParsers();

  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof BadParam) return reply.status(400).send(errorBody('invalid_request', err.message, err.param));
    if (err.code === 'FST_ERR_HANDLER_TIMEOUT') {
      request.log.warn({ url: request.url }, 'ledger query timed out');
      return reply
        .status(504)
        .send(errorBody('deadline_exceeded', `The ledger did not answer within ${HANDLER_TIMEOUT_MS / 1000} s; narrow the range or retry.`));
    }
    // fastify's own refusals of a request (a malformed header it checks, an unsupported body)
    if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.status(400).send(errorBody('invalid_request', `The request could not be served: ${err.message}`));
    }
    request.log.error({ err }, 'ledger request failed');
    return reply.status(500).send(errorBody('internal_error', Errors.internal_error.message));
  });
  app.setNotFoundHandler((request, reply) => reply.status(404).send(errorBody('not_found', `No route ${request.method} ${request.url.split('?')[0]}.`)));

  app.get('/healthz', async () => ({ ok: true }));

  app.get('/v1/costs', async (request) => costs(deps.db, parseCostsQuery(request.query as Record<string, unknown>, now())));

  app.get('/v1/slo', async (request) => slo(deps.db, parseSloQuery(request.query as Record<string, unknown>, now())));

  app.get<{ Params: { id: string } }>('/v1/requests/:id', async (request, reply) => {
    const report = await requestReport(deps.db, request.params.id);
    if (!report) return reply.status(404).send(errorBody('not_found', `The ledger has no request ${request.params.id} (unknown, or not projected yet).`));
    return report;
  });

  app.get('/v1/ledger/position', async () => {
    const seq = await readPosition(deps.db, deps.positionName);
    if (!deps.streamLastSeq) return { seq };
    const streamLastSeq = await deps.streamLastSeq();
    return { seq, streamLastSeq, lag: Math.max(0, streamLastSeq - seq) };
  });

  return app;
}
