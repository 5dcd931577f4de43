import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyRequest } from 'fastify';
import { registerAdmin } from './admin.js';
import { registerApi } from './api.js';
import { registerBatches } from './batch-routes.js';
import { registerFiles } from './file-routes.js';
import { readMultipart } from './files.js';
import { AZURE_ROUTES } from './azure.js';
import { apiError, invalidRequest } from './errors.js';
import { SimState } from './state.js';
import type { Sim, SimOptions } from './types.js';

const BODY_LIMIT = 64 * 1024 * 1024;
const COUNTED_ROUTES = new Set<string>(['/v1/chat/completions', '/v1/responses', '/v1/embeddings', ...Object.values(AZURE_ROUTES)]);
const UNPARSABLE_JSON =
  "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)";

/** Starts a simulator; resolves once it is listening. */
export async function startSim(opts: SimOptions = {}): Promise<Sim> {
  const state = new SimState(opts);
  const app = buildApp(state);
  const host = opts.host ?? '127.0.0.1';
  await app.listen({ port: opts.port ?? 0, host });
  const { port } = app.server.address() as AddressInfo;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost(host)}:${port}/v1`,
    port,
    stats: () => ({ ...state.stats }),
    setFaults: (f) => {
      const r = state.patchFaults(f);
      if (typeof r === 'string') throw new RangeError(r);
    },
    reset: () => state.reset(),
    close: () =>
      (closing ??= (async () => {
        state.batches.clear();
        for (const res of state.held) res.destroy();
        state.held.clear();
        await app.close();
      })()),
  };
}

function buildApp(state: SimState): FastifyInstance {
  const app = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT,
    // Hanging and slow-streaming requests must not keep close() waiting.
    forceCloseConnections: true,
  });

  // Like OpenAI, parse the body as JSON whatever content-type the client sent
  // (fetch with a string body says text/plain), and let an empty body through
  // so that `POST /admin/reset` with a JSON content-type works.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, body === '' ? undefined : JSON.parse(body as string));
    } catch {
      done(Object.assign(new Error(UNPARSABLE_JSON), { statusCode: 400 }), undefined);
    }
  });
  // File uploads (POST /v1/files) are the one multipart body; the catch-all above would read them as JSON.
  app.addContentTypeParser('multipart/form-data', (req: FastifyRequest, payload: Readable) => readMultipart(req.headers, payload, BODY_LIMIT));

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (req.routeOptions.url !== undefined && COUNTED_ROUTES.has(req.routeOptions.url)) state.stats.errors++;
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 ? err.statusCode : 500;
    const body =
      status >= 500
        ? apiError(500, 'The server had an error while processing your request.', 'server_error').body
        : invalidRequest(err.code?.startsWith('FST_ERR_CTP_INVALID_JSON') ? UNPARSABLE_JSON : err.message).body;
    return reply.code(status).type('application/json').send(JSON.stringify(body));
  });

  app.setNotFoundHandler((req, reply) => {
    const err = invalidRequest(`Invalid URL (${req.method} ${req.url})`);
    return reply.code(404).type('application/json').send(JSON.stringify(err.body));
  });

  registerApi(app, state);
  registerFiles(app, state);
  registerBatches(app, state);
  registerAdmin(app, state);
  return app;
}

/** A host usable in a URL; wildcard binds are reached through loopback. */
function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}
