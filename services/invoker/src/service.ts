import { NOTHING, publishEvent, sendReply, type Decided, type Delivery, type Received, type ServiceContext } from '@sluice/bus';
import { Consumers, Topology } from '@sluice/contracts';
import type { Circuit } from './circuit.js';
import { createInvoker, type Invoke } from './invoke.js';
import { kvResultStore } from './results.js';
import { ClientPool } from './upstream.js';

type Wiring = Pick<ServiceContext, 'bus' | 'buckets' | 'control' | 'log' | 'env'>;

/**
 * The chat.routed handler on the real adapters: its own client pool (pruned on config changes)
 * and circuits, publishing to the stream, replying over core NATS, terminal answers stored in
 * `sluice_results`.
 */
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

/**
 * chat.routed -> everything the invoker publishes, by itself: attempts and circuit changes go out
 * as they happen, and streamed chunks as they arrive (see `Consumers.invoker`), so the decision
 * handed back is always nothing. It resolves once the terminal event is stored, so the input is
 * still acked only after it.
 */
export function onChatRouted(invoke: Invoke) {
  return async (event: Received<typeof Consumers.invoker>, delivery: Delivery): Promise<Decided<never>> => {
    await invoke(event, delivery);
    return NOTHING;
  };
}
