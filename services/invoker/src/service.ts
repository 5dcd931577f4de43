import { answer, NOTHING, publishEvent, type Decided, type Delivery, type Received, type ServiceContext } from '@sluice/bus';
import { Subjects, Topology, type InvokerConsumer } from '@sluice/contracts';
import { streamBodies } from './body.js';
import { Cancels } from './cancels.js';
import { KvCircuits } from './circuit-store.js';
import { createInvoker, type Invoke } from './invoke.js';
import { routeBatchLines } from './batch-route.js';
import { kvResultStore } from './results.js';
import { ClientPool } from './upstream.js';
import { UpstreamBatchStore } from './upstream-batch-store.js';

type Wiring = Pick<ServiceContext, 'bus' | 'buckets' | 'control' | 'log' | 'env'>;

/** The invoker's handler and what to close with it: its subscription to the clients' cancels and its watch of the circuits. */
export interface WiredInvoker {
  invoke: Invoke;
  /** Resolves once the circuits other replicas wrote are in memory (never rejects; a failed watch is logged). */
  ready: Promise<void>;
  stop(): void;
}

/**
 * The chat.routed handler on the real adapters: its own client pool (pruned on config changes)
 * and the circuits shared with the other replicas (`sluice_circuits`, watched), bodies read from the stream, publishing to the stream, replying over core NATS,
 * terminal answers stored in `sluice_results`, batch lines for a deployment with `batchApi`
 * recorded for its Batch API (batch-route.ts), and the clients' cancels heard on
 * `Subjects.cancelAll` (core NATS, every replica: the one running the request stops it).
 */
export function wireInvoker(svc: Wiring): WiredInvoker {
  const { bus, buckets, control, log } = svc;
  const clients = new ClientPool(svc.env);
  control.onChange(() => clients.prune(control.config()));
  const cancels = new Cancels(Date.now);
  const sub = bus.nc.subscribe(Subjects.cancelAll, { callback: (_e, m) => cancels.cancel(m.subject.slice(Subjects.cancel('').length)) });
  const circuits = new KvCircuits(buckets.circuits, log);
  const ready = circuits.start().catch((err: unknown) => log.error({ err }, 'could not watch the circuits; this replica decides on its own writes only'));
  const results = kvResultStore(buckets.results);
  const direct = createInvoker({
    config: control.config,
    clients,
    circuits,
    publish: (event, trace) => publishEvent(bus.js, event, trace),
    reply: (replyTo, reply, mark) => answer(bus, replyTo, reply, mark),
    results,
    maxPayload: () => bus.nc.info?.max_payload ?? Topology.maxPayloadBytes,
    readBody: streamBodies(bus),
    cancels,
    log,
  });
  // batch lines for a deployment with batchApi are recorded for the upstream's Batch API instead (upstream-batch-runner.ts)
  const lines = new UpstreamBatchStore(buckets.upstreamBatches, log);
  const invoke = routeBatchLines({ config: control.config, lines, results, publish: (event, trace) => publishEvent(bus.js, event, trace), log }, direct);
  return {
    invoke,
    ready,
    stop: () => {
      sub.unsubscribe();
      circuits.stop();
    },
  };
}

/**
 * chat.routed -> everything the invoker publishes, by itself: attempts and circuit changes go out
 * as they happen, and streamed chunks as they arrive (see `invokerConsumer`), so the decision
 * handed back is always nothing. It resolves once the terminal event is stored, so the input is
 * still acked only after it.
 */
export function onChatRouted(invoke: Invoke) {
  return async (event: Received<InvokerConsumer>, delivery: Delivery): Promise<Decided<never>> => {
    await invoke(event, delivery);
    return NOTHING;
  };
}
