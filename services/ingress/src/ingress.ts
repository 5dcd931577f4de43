import type { AddressInfo } from 'node:net';
import { publishEvent, type Closer, type ServiceContext } from '@sluice/bus';
import { applyHttpLimits } from '@sluice/contracts';
import { openBatchStore } from './batch-store.js';
import { startBatchRunner } from './batch-runner.js';
import { ingressDeps } from './deps.js';
import { buildApp, ingressHttpLimits } from './http.js';
import { openReplyInbox } from './inbox.js';
import { replyRuleFrom } from './reply-subject.js';
import { watchKeys } from './keys-watch.js';
import { openNatsDoor } from './nats-door.js';
import { readBacklog } from './overload-backlog.js';
import { openOverloadGate } from './overload-gate.js';

export interface FrontDoors {
  /** The HTTP port actually bound (SLUICE_INGRESS_PORT=0 picks a free one). */
  port: number;
  /** In the order `runService` expects: it closes them last to first. */
  closers: Closer[];
  /** HTTP requests waiting for their answer. */
  waiting(): number;
  /** Requests holding a place under `ingress.maxInFlight` (both doors). */
  inFlight(): number;
}

/**
 * Both front doors on one set of deps, listening before this resolves: the reply inbox HTTP
 * answers arrive on, the virtual keys' index (watching `sluice_keys`), the NATS door (`sluice.chat.<tenant>`, queue group `ingress`) and the HTTP
 * server on `SLUICE_HOST:SLUICE_INGRESS_PORT`, its limits re-applied on every config change.
 * The batch runner (batch-runner.ts) starts with them, on the same deps. The int tests start exactly
 * this. Closing stops HTTP first (in-flight answers finish), then the batch runner's round, the
 * NATS door, then the inbox.
 */
export async function startFrontDoors({
  bus,
  buckets,
  control,
  log,
  env,
}: Pick<ServiceContext, 'bus' | 'buckets' | 'control' | 'log' | 'env'>): Promise<FrontDoors> {
  // read first: a wrong value stops the service before a door opens
  const replies = replyRuleFrom(env);
  // before the doors open: a restarted replica must not refuse the keys it has not read yet
  const keys = await watchKeys(buckets.keys, log);
  const inbox = openReplyInbox(bus.nc, log);
  const batches = await openBatchStore(buckets.batches, log);
  const overload = openOverloadGate({
    config: () => control.config(),
    readBacklog: (now, previous) => readBacklog(bus, now, previous),
    publish: (event, traceparent) => publishEvent(bus.js, event, { traceparent }),
    log,
    now: Date.now,
  });
  const deps = ingressDeps({ bus, buckets, control, log }, inbox, () => keys.index(), batches, overload);
  const door = openNatsDoor(bus.nc, deps, replies);
  const app = buildApp(deps);
  // node reads its timeouts and connection limit live: a config change applies without a restart
  control.onChange(() => applyHttpLimits(app.server, ingressHttpLimits(deps.config().ingress)));
  await app.listen({ host: env.SLUICE_HOST || '127.0.0.1', port: Number(env.SLUICE_INGRESS_PORT ?? 8080) });
  const port = (app.server.address() as AddressInfo).port;
  log.info({ port }, 'http front door listening');
  const runner = startBatchRunner({ ...deps, store: batches, bus });
  return {
    port,
    closers: [() => overload.stop(), () => keys.stop(), () => batches.stop(), () => inbox.stop(), () => door.stop(), () => runner.stop(), () => app.close()],
    waiting: () => inbox.size(),
    inFlight: () => overload.inFlight(),
  };
}
