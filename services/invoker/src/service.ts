import { consumeEvents, publishEvent, sendReply, type Consumption, type ServiceContext } from '@sluice/bus';
import { Subjects, Topology } from '@sluice/contracts';
import type { Circuit } from './circuit.js';
import { createInvoker, type Invoke } from './invoke.js';
import { kvResultStore } from './results.js';
import { ClientPool } from './upstream.js';

type Wiring = Pick<ServiceContext, 'bus' | 'buckets' | 'control' | 'log' | 'env'>;

/**
 * Consumes chat.routed and answers each request through the upstream deployments.
 * Emits invoke.attempted / invoke.failed per attempt, circuit.opened / circuit.closed,
 * then chat.completed or chat.failed; replies (and streamed chunks) go to ctx.replyTo.
 */
export async function startInvoker(svc: Wiring): Promise<Consumption> {
  const { bus, control, log } = svc;
  const invoke = wireInvoker(svc);
  return consumeEvents(bus, {
    durable: Topology.consumers.invoker,
    filter: Subjects.eventsOf('chat.routed'),
    // read once: max_ack_pending is a consumer setting, applied when the service starts
    concurrency: control.config().invoker.concurrency,
    log,
    handler: async (event, delivery) => {
      // the filter only lets chat.routed through; anything else is not ours to judge
      if (event.type !== 'chat.routed') return;
      await invoke(event, delivery);
    },
  });
}

/** The chat.routed handler on the real adapters (its own client pool and circuits). */
export function wireInvoker(svc: Wiring): Invoke {
  const { bus, buckets, control, log } = svc;
  const clients = new ClientPool(svc.env);
  control.onChange(() => clients.prune(control.config()));
  return createInvoker({
    config: control.config,
    clients,
    circuits: new Map<string, Circuit>(),
    publish: (event, trace) => publishEvent(bus.js, event, trace),
    reply: (replyTo, reply) => sendReply(bus.nc, replyTo, reply),
    results: kvResultStore(buckets.results),
    maxPayload: () => bus.nc.info?.max_payload ?? Topology.maxPayloadBytes,
    log,
  });
}
