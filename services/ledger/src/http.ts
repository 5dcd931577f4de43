import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { Errors, openAiErrorBody, type ErrorCode } from '@sluice/contracts';
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
}

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
  // a line per request would drown the log: tests and dashboards poll these endpoints
  const app = Fastify(deps.logger ? { loggerInstance: deps.logger, logController: new LogController({ disableRequestLogging: true }) } : { logger: false });

  app.setErrorHandler((err, request, reply) => {
    if (err instanceof BadParam) return reply.status(400).send(errorBody('invalid_request', err.message, err.param));
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
