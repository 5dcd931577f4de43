import type { AddressInfo } from 'node:net';
import { publishEvent, type Closer, type ServiceContext } from '@sluice/bus';
import { applyHttpLimits } from '@sluice/contracts';
import { Topology } from '@sluice/contracts';
import type { IngressDeps } from './deps.js';
import { buildApp, ingressHttpLimits } from './http.js';
import { openReplyInbox } from './inbox.js';
import { openNatsDoor } from './nats-door.js';
import { indexTenants } from './tenants.js';

export interface RunningIngress {
  /** The HTTP port actually bound (SLUICE_INGRESS_PORT=0 picks a free one). */
  port: number;
  /** In the order `runService` expects: it closes them last to first. */
  closers: Closer[];
  /** HTTP requests waiting for their answer. */
  waiting(): number;
}

/**
 * Starts both front doors: the NATS subscription and the HTTP server, listening before this
 * resolves. Closing stops HTTP first (in-flight answers finish), then the NATS door, then the
 * reply inbox the HTTP answers arrive on.
 */
export async function startIngress(ctx: ServiceContext): Promise<RunningIngress> {
  const { control, bus, log, env } = ctx;
  let config = control.config();
  let tenants = indexTenants(config);
  control.onChange(() => {
    // onChange also fires for degrade changes; only a new config changes the tenants
    if (control.config() === config) return;
    config = control.config();
    tenants = indexTenants(config);
  });

  const inbox = openReplyInbox(bus.nc, log);
  const deps: IngressDeps = {
    config: () => config,
    tenants: () => tenants,
    publish: async (event, traceparent) => {
      await publishEvent(bus.js, event, { traceparent });
    },
    // the server's own limit, read again after a reconnect (another server may have another)
    maxPayload: () => bus.nc.info?.max_payload ?? Topology.maxPayloadBytes,
    inbox,
    log,
    now: Date.now,
  };
  const door = openNatsDoor(bus.nc, deps);
  const app = buildApp(deps);
  // node reads its timeouts and connection limit live: a config change applies without a restart
  control.onChange(() => applyHttpLimits(app.server, ingressHttpLimits(config.ingress)));
  await app.listen({ host: env.SLUICE_HOST || '127.0.0.1', port: Number(env.SLUICE_INGRESS_PORT ?? 8080) });
  const port = (app.server.address() as AddressInfo).port;
  log.info({ port }, 'http front door listening');
  return { port, closers: [() => inbox.stop(), () => door.stop(), () => app.close()], waiting: () => inbox.size() };
}
