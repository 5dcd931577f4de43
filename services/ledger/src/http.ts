import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyServerOptions } from 'fastify';
import {
  answerClientError,
  applyHttpLimits,
  Errors,
  frameworkRefusal,
  HTTP_SERVER_OPTIONS,
  openAiErrorBody,
  SluiceError,
  type ErrorCode,
  type HttpLimits,
  type SluiceConfig,
} from '@sluice/contracts';
import { metricsHandler } from '@sluice/telemetry';
import { ADMIN_MAX_BODY_BYTES, adminRoutes, type AdminDeps } from './admin.js';
import { maySeeRequest, principalOf, readerIndex, requireAdmin, tenantScope, type Principal } from './auth.js';
import type { EventReader } from './content.js';
import type { Db } from './db.js';
import { BadParam, parseCacheQuery, parseCostsQuery, parseSloQuery } from './params.js';
import { costs } from './costs.js';
import { cacheReport } from './cache-report.js';
import { slo } from './slo.js';
import { requestReport } from './timeline.js';
import { readPosition } from './store.js';
import { lanesRoute, type LaneDepth } from './lanes.js';
import { budgetsReport, parseBudgetsQuery } from './budgets-report.js';
import { mountConsole } from './console.js';
import { parseVariantsQuery, variantsReport } from './variants.js';

export interface AppDeps {
  db: Db;
  /**
   * The live config: who may read (`admin.keySha256`, `tenants[].readKeySha256`) and which
   * tenants' timelines show their text (`tenants[].ledger.storeContent`).
   */
  config: () => SluiceConfig;
  /** Reads an event back from the stream, for the text on opted-in tenants' timelines; absent: never shown. */
  readEvent?: EventReader;
  /** The admin API's keys bucket and event publisher; absent: `/admin/v1/...` answers 404. */
  admin?: AdminDeps;
  /** Each lane's invoker consumer depth, for `GET /v1/lanes` (lanes.ts, admin keys); absent: not served. */
  laneDepth?: LaneDepth;
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
 * The ledger's HTTP edges: a read API for dashboards and scripts and an admin API of small JSON
 * bodies, so a request is its headers and a few KiB, and a second-long wait for them is already a
 * broken client. The keep-alive outlasts a
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

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A tenant's read key may call the route (scoped to its tenant by the route); otherwise admin keys only. */
    tenantReadable?: boolean;
    /** The route takes no key (`/healthz`, `/metrics`, the console's pages): the key check skips it. */
    public?: boolean;
  }
  interface FastifyRequest {
    /** Who the request's key is (auth.ts); set on every route not marked `public`. */
    principal: Principal;
  }
}

/** The catalogue's OpenAI-shaped error body, with the offending parameter when there is one. */
function errorBody(code: ErrorCode, message: string, param?: string) {
  return openAiErrorBody(code, message, undefined, param ?? null);
}

/**
 * The ledger's read API, and the admin API when `deps.admin` is given. The caller listens;
 * tests use `app.inject()`. Every route not marked `public` (`/healthz`, `/metrics`, the console's
 * pages) takes `Authorization: Bearer <key>`: an
 * admin key reads everything and may use `/admin/v1`; a tenant's read key reads the routes
 * marked `tenantReadable`, limited to its own tenant (auth.ts). A route added without that mark
 * is for admin keys only.
 *
 * @example
 * const app = buildApp({ db, positionName: 'ledger', config: () => config });
 * const res = await app.inject({ url: '/v1/costs?groupBy=tenant,model', headers: { authorization: `Bearer ${adminKey}` } });
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
  // only the admin API takes a body (its own JSON parser, 64 KiB: admin.ts); anywhere else a
  // POST is a 404 and node reads its body off the wire and drops it
  app.removeAllContentTypeParsers();

  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof BadParam) return reply.status(400).send(errorBody('invalid_request', err.message, err.param));
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      return reply.status(413).send(errorBody('body_too_large', `The request body is larger than ${ADMIN_MAX_BODY_BYTES / 1024} KiB.`));
    if (err instanceof SluiceError) {
      if (err.status === 401) void reply.header('www-authenticate', 'Bearer');
      return reply.status(err.status).send(errorBody(err.code, err.message));
    }
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

  app.decorateRequest('principal', null as never);
  // before the body is read: an unauthenticated caller gets 401 without sending it
  app.addHook('onRequest', async (request) => {
    if (request.is404 || request.routeOptions.config.public) return;
    request.principal = principalOf(readerIndex(deps.config()), request.headers.authorization);
    if (!request.routeOptions.config.tenantReadable) requireAdmin(request.principal);
  });
  const tenantReadable = { config: { tenantReadable: true } };

  app.get('/healthz', { config: { public: true } }, async () => ({ ok: true }));
  // Prometheus's scrape (docs/metrics.md, metrics.ts)
  app.get('/metrics', { config: { public: true } }, metricsHandler);
  // the web console (console.ts): its pages ask for a key themselves
  mountConsole(app, deps.live, deps.config, now);

  app.get('/v1/costs', tenantReadable, async (request) => {
    const q = parseCostsQuery(request.query as Record<string, unknown>, now());
    const tenant = tenantScope(request.principal, q.tenant);
    return costs(deps.db, { ...q, ...(tenant !== undefined ? { tenant } : {}) });
  });

  // hits by kind, tokens and USD saved, net of the semantic cache's embedding calls
  app.get('/v1/cache', tenantReadable, async (request) => {
    const q = parseCacheQuery(request.query as Record<string, unknown>, now());
    const tenant = tenantScope(request.principal, q.tenant);
    return cacheReport(deps.db, { ...q, ...(tenant !== undefined ? { tenant } : {}) });
  });

  app.get('/v1/slo', tenantReadable, async (request) => {
    const q = parseSloQuery(request.query as Record<string, unknown>, now());
    const tenant = tenantScope(request.principal, q.tenant);
    return slo(deps.db, { ...q, ...(tenant !== undefined ? { tenant } : {}) });
  });

  const storeContent = (tenant: string) => deps.config().tenants.find((t) => t.id === tenant)?.ledger?.storeContent === true;
  app.get<{ Params: { id: string } }>('/v1/requests/:id', tenantReadable, async (request, reply) => {
    const report = await requestReport(deps.db, request.params.id, { storeContent, ...(deps.readEvent ? { read: deps.readEvent } : {}) });
    // another tenant's request is answered as an unknown one: a read key learns nothing of other tenants' ids
    if (!report || !maySeeRequest(request.principal, report.tenant)) {
      return reply.status(404).send(errorBody('not_found', `The ledger has no request ${request.params.id} (unknown, or not projected yet).`));
    }
    return report;
  });

  // the projection's progress, no tenant's data: what a reader polls to know its numbers are current
  app.get('/v1/ledger/position', tenantReadable, async () => {
    const seq = await readPosition(deps.db, deps.positionName);
    if (!deps.streamLastSeq) return { seq };
    const streamLastSeq = await deps.streamLastSeq();
    return { seq, streamLastSeq, lag: Math.max(0, streamLastSeq - seq) };
  });

  // each budget window's exact spend, what requests in flight reserved, and the alerts sent
  app.get('/v1/budgets', tenantReadable, async (request) => {
    const q = parseBudgetsQuery(request.query as Record<string, unknown>);
    const tenant = tenantScope(request.principal, q.tenant);
    return budgetsReport(deps.db, { ...q, ...(tenant !== undefined ? { tenant } : {}) }, now());
  });

  // per canary variant: requests, error rate, latency percentiles and cost (docs/canaries.md)
  app.get('/v1/variants', tenantReadable, async (request) => {
    const q = parseVariantsQuery(request.query as Record<string, unknown>, now());
    const tenant = tenantScope(request.principal, q.tenant);
    return variantsReport(deps.db, { ...q, ...(tenant !== undefined ? { tenant } : {}) });
  });

  if (deps.laneDepth) lanesRoute(app, { db: deps.db, config: deps.config, depth: deps.laneDepth });
  if (deps.admin) void app.register(adminRoutes({ ...deps.admin, config: deps.config, now }), { prefix: '/admin/v1' });

  return app;
}
