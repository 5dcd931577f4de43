import { consumeEvents, NOTHING, publishEvent, sendReply, type Consumption, type ServiceContext } from '@sluice/bus';
import { Consumers, Topology } from '@sluice/contracts';
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
    consumer: Consumers.invoker,
    // read once: max_ack_pending is a consumer setting, applied when the service starts
    concurrency: control.config().invoker.concurrency,
    log,
    // the one handler that publishes by itself: attempts and circuit changes go out as they
    // happen, and streamed chunks as they arrive (see Consumers.invoker); it resolves once the
    // terminal event is stored, so the input is still acked only after it
    handler: async (event, delivery) => {
      await invoke(event, delivery);
      return NOTHING;
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
