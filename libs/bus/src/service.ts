import { createLogger, serveMetrics, shutdownMetrics, shutdownTracing, type Logger, type MetricsServer } from '@sluice/telemetry';
import { KEY_CHECKERS, type ServiceName } from '@sluice/contracts';
import { connectBus, type Bus } from './connect.js';
import { ensureTopology, type Buckets } from './topology.js';
import { watchControl, type Control } from './control.js';
import { retryFor } from './retry.js';

/** How long a starting service tries to reach its streams and buckets before it gives up (and its supervisor restarts it). */
const STARTUP_RETRY_MS = 60_000;

export interface ServiceContext {
  name: ServiceName;
  log: Logger;
  bus: Bus;
  buckets: Buckets;
  control: Control;
  env: NodeJS.ProcessEnv;
}

/** Something to close on shutdown, in reverse order of registration. */
export type Closer = () => Promise<void> | void;

/**
 * The common life of a service process: logger, `/metrics` on SLUICE_METRICS_PORT (when set and
 * not 0: the services without an HTTP port of their own), NATS connection, topology, live
 * config; then `start` wires the service's consumers and returns what to close. SIGTERM/SIGINT
 * stop the consumers (in-flight messages finish and are acked), then drain the connection, then
 * flush buffered spans and metrics when those are on.
 *
 * @example
 * await runService('router', async (ctx) => [await consumeEvents(ctx.bus, {...})]);
 */
export async function runService(name: ServiceName, start: (ctx: ServiceContext) => Promise<Array<Closer | { stop(): Promise<void> | void }>>): Promise<void> {
  const env = process.env;
  const log = createLogger(name);
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  // first, so a scrape sees the process even while it waits for NATS or its config
  const metricsServer = await startMetricsServer(env, log);
  const url = env.NATS_URL ?? 'nats://127.0.0.1:4222';
  const bus = await connectBus(url, `sluice-${name}-${process.pid}`, log);
  // tried again while a cluster has no leader for a stream (a node just died): a process restarted
  // then crashed on the first timeout and waited out its supervisor's backoff
  const buckets = await retryFor(STARTUP_RETRY_MS, () =>
    ensureTopology(bus, {
      replicas: Number(env.SLUICE_STREAM_REPLICAS ?? 1),
      ...(env.SLUICE_STREAM_MAX_AGE_HOURS ? { maxAgeHours: Number(env.SLUICE_STREAM_MAX_AGE_HOURS) } : {}),
      ...(env.SLUICE_RESULTS_MAX_AGE_HOURS ? { resultsMaxAgeHours: Number(env.SLUICE_RESULTS_MAX_AGE_HOURS) } : {}),
    }).catch((err: unknown) => {
      log.warn({ err }, 'could not ensure the topology yet; trying again');
      throw err;
    }),
  );
  log.info({ nats: url }, 'connected; waiting for config');
  // only the services that check keys read their hashes (their NATS users alone may)
  const control = await watchControl(buckets.control, log, KEY_CHECKERS.includes(name) ? { keyHashes: buckets.tenantKeys } : {});
  const closers = await start({ name, log, bus, buckets, control, env });
  log.info('started');
  // a supervisor that spawned us with an IPC channel learns readiness here, whatever LOG_LEVEL says
  process.send?.({ sluice: 'ready', service: name });
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    const timer = setTimeout(() => process.exit(1), 10_000);
    timer.unref();
    for (const c of closers.reverse()) {
      try {
        await (typeof c === 'function' ? c() : c.stop());
      } catch (err) {
        log.warn({ err }, 'error while stopping');
      }
    }
    control.stop();
    await bus.nc.drain().catch(() => undefined);
    await metricsServer?.close();
    // last, so the spans of the messages that finished while draining are exported too
    await Promise.all([shutdownTracing(), shutdownMetrics()]);
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

/**
 * The `/metrics` server on SLUICE_METRICS_PORT (host SLUICE_HOST), when set and not 0. A port
 * that is taken is logged and skipped: the service runs on without it rather than not at all.
 */
async function startMetricsServer(env: NodeJS.ProcessEnv, log: Logger): Promise<MetricsServer | undefined> {
  const port = Number(env.SLUICE_METRICS_PORT ?? 0);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`SLUICE_METRICS_PORT: ${env.SLUICE_METRICS_PORT} is not a port (0-65535; 0: no /metrics server)`);
  try {
    const server = await serveMetrics(port, env.SLUICE_HOST ?? '127.0.0.1');
    if (server) log.info({ metrics: server.url }, 'serving metrics');
    return server;
  } catch (err) {
    log.error({ err, port }, 'cannot serve /metrics on SLUICE_METRICS_PORT; running without it');
    return undefined;
  }
}
