import { consumeEvents, publishEvent, sendReply, type Consumption, type ServiceContext } from '@sluice/bus';
import { Subjects, Topology } from '@sluice/contracts';
import type { Circuit } from './circuit.js';
import { createInvoker } from './invoke.js';
import { ClientPool } from './upstream.js';

/**
 * Consumes chat.routed and answers each request through the upstream deployments.
 * Emits invoke.attempted / invoke.failed per attempt, circuit.opened / circuit.closed,
 * then chat.completed or chat.failed; replies (and streamed chunks) go to ctx.replyTo.
 */
export async function startInvoker(svc: Pick<ServiceContext, 'bus' | 'control' | 'log' | 'env'>): Promise<Consumption> {
  const { bus, control, log } = svc;
  const clients = new ClientPool(svc.env);
  control.onChange(() => clients.prune(control.config()));
  const invoke = createInvoker({
    config: control.config,
    clients,
    circuits: new Map<string, Circuit>(),
    publish: (event, trace) => publishEvent(bus.js, event, trace),
    reply: (replyTo, reply) => sendReply(bus.nc, replyTo, reply),
    log,
  });
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
