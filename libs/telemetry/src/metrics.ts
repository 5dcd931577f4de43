import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { metrics, type Meter } from '@opentelemetry/api';

/** The meters Sluice's services record with: one per service, the instrumentation scope Prometheus shows as `otel_scope_name`. */
export type MeterName = 'sluice.ingress' | 'sluice.limiter' | 'sluice.cache' | 'sluice.router' | 'sluice.invoker' | 'sluice.ledger' | 'sluice.degrader';

/** What `startMetrics` leaves behind: the Prometheus reader's handler and the provider's shutdown. */
export interface MetricsHandle {
  /** Answers one scrape with the current state of every instrument (Prometheus text format). */
  serve(req: IncomingMessage, res: ServerResponse): void;
  /** Pushes what the OTLP reader has not sent yet, then stops the provider. */
  shutdown(): Promise<void>;
}

// on globalThis for the reason state.ts gives: the preload and the service may load this file twice
const KEY = Symbol.for('sluice.telemetry.metrics');
type WithHandle = typeof globalThis & { [KEY]?: MetricsHandle };
const handle = (): MetricsHandle | undefined => (globalThis as WithHandle)[KEY];

/**
 * Whether metrics are recorded in this process: on unless `SLUICE_METRICS=off` (or
 * `OTEL_SDK_DISABLED=true`), once the preload (or a test) ran `startMetrics`. When off, every
 * instrument from `meter` is OpenTelemetry's no-op: a caller whose attributes cost something to
 * build checks this first.
 */
export function metricsOn(): boolean {
  return handle() !== undefined;
}

/**
 * The meter of one service, for its instruments. Ask for instruments after `startMetrics` ran
 * (the preload runs it before any service module loads; a test calls it first): a meter taken
 * before is the no-op one for good.
 *
 * @example
 * const calls = meter('sluice.invoker').createCounter('sluice.calls', { unit: '{call}' });
 */
export function meter(name: MeterName): Meter {
  return metrics.getMeter(name);
}

/**
 * Starts the OpenTelemetry metrics SDK for this process, once: a Prometheus reader (served by
 * `serveMetrics` or `metricsHandler`, never on a port of its own) and, when
 * OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is set (and
 * OTEL_METRICS_EXPORTER is not `none`), a reader pushing over OTLP/HTTP every
 * OTEL_METRIC_EXPORT_INTERVAL ms (default 60000). Resource from OTEL_SERVICE_NAME and
 * OTEL_RESOURCE_ATTRIBUTES. Resolves false, loading nothing, when `SLUICE_METRICS=off` or
 * `OTEL_SDK_DISABLED=true`; throws when SLUICE_METRICS is anything but `on`, `off` or unset.
 */
export async function startMetrics(): Promise<boolean> {
  const env = process.env;
  const switched = env.SLUICE_METRICS ?? '';
  // a typo (`false`, `0`) must not leave metrics on unnoticed
  if (!['', 'on', 'off'].includes(switched)) throw new Error(`SLUICE_METRICS: ${JSON.stringify(switched)} is neither on nor off (default on)`);
  if (switched === 'off' || env.OTEL_SDK_DISABLED === 'true') return false;
  if (handle()) return true;
  const { startMeterProvider } = await import('./metrics-sdk.js');
  (globalThis as WithHandle)[KEY] = await startMeterProvider(env);
  return true;
}

/**
 * Pushes what is left over OTLP and stops the metrics SDK; a no-op when metrics are off. Waits
 * at most `timeoutMs`, so a collector that is down cannot hold up a shutdown.
 */
export async function shutdownMetrics(timeoutMs = 3000): Promise<void> {
  const h = handle();
  if (!h) return;
  delete (globalThis as WithHandle)[KEY];
  metrics.disable();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([h.shutdown().catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs).unref()))]);
  clearTimeout(timer);
}

/** A `/metrics` server of a service without an HTTP port of its own. */
export interface MetricsServer {
  /** `http://<host>:<port>/metrics` */
  url: string;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` (Prometheus text format) on `port` for the services with no HTTP port of
 * their own (router, cache, limiter, invoker, degrader: SLUICE_METRICS_PORT); any other path is
 * a 404. Undefined, with nothing listening, when `port` is 0 or metrics are off. Rejects when
 * the port is taken.
 */
export async function serveMetrics(port: number, host = '127.0.0.1'): Promise<MetricsServer | undefined> {
  const h = handle();
  if (!h || port === 0) return undefined;
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === '/metrics') h.serve(req, res);
    else res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  return {
    url: `http://${host}:${bound.port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * A fastify route handler for `GET /metrics` on a service's own HTTP port (ingress, ledger):
 * the scrape is answered straight on the raw response (the reply is hijacked). 404 when metrics
 * are off.
 *
 * @example
 * app.get('/metrics', metricsHandler);
 */
export function metricsHandler(request: { raw: IncomingMessage }, reply: { hijack(): void; raw: ServerResponse }): void {
  const h = handle();
  reply.hijack();
  if (h) h.serve(request.raw, reply.raw);
  else reply.raw.writeHead(404, { 'content-type': 'text/plain' }).end('metrics are off (SLUICE_METRICS=off)\n');
}
