import { jetstream } from '@nats-io/jetstream';
import { Topology, type ConsumerSpec } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import type { Bus } from './connect.js';
import { flushAcks } from './acks.js';
import { pullInBatches } from './linger.js';
import { retryFor } from './retry.js';
import { consumeReplays } from './replay.js';
import type { Decided, Emitted, Received } from './decided.js';
import { createRunner, DEFAULT_ACK_WAIT_MS, ensureDurable, type Delivery } from './runner.js';

export { DEFAULT_ACK_WAIT_MS, PoisonMessage, traceOf, type Delivery } from './runner.js';

/** Below this many messages in flight, acks go out at once rather than waiting to share a write. */
const MIN_CONCURRENCY_TO_HOLD_ACKS = 32;

/**
 * A standing pull on a cluster, when the node leading its durable dies: the pull lived on that
 * node and dies with it, and a replica connected to another node hears nothing. nats.js notices
 * only by missed idle heartbeats, then asks for the consumer's info and pulls again; a failed info
 * waits a jittered pull expiry (up to 1.5 x) before the next. At its defaults (30 s pulls, 15 s
 * heartbeats, the connection's 10 s API timeout) a replica sat idle 17-30 s after a node kill,
 * while the new leader, elected within about 5 s, had messages for it (docs/cluster.md,
 * consume-cluster.int.spec.ts). With these it takes messages again about 1 s after the election.
 * What it costs: an idle pull is answered and sent again every 2 s, and a heartbeat each second.
 */
export const CONSUME_PULL = { expiresMs: 2_000, idleHeartbeatMs: 1_000, infoTimeoutMs: 2_000 } as const;

export interface ConsumeOptions<C extends ConsumerSpec = ConsumerSpec> {
  /**
   * Which durable (shared by every replica of the service), through which filter subject, what
   * its handler receives and may emit: an entry of `Consumers` in @sluice/contracts.
   */
  consumer: C;
  /** Most messages in flight across all replicas (the consumer's max_ack_pending). */
  concurrency: number;
  /**
   * How long an unacked message waits before redelivery. Short, so a message held by a replica
   * that died comes back within seconds; handlers that run longer are kept alive by a heartbeat
   * (`working()`), so they are not redelivered while they run.
   */
  ackWaitMs?: number;
  /**
   * For consumers that need not react at once: gather messages for this long and pull them in
   * one batch instead of one delivery per message (see linger.ts). Unset: a standing pull.
   */
  lingerMs?: number;
  /** Where a new durable starts; defaults to new messages only. */
  deliverAll?: boolean;
  /**
   * Tries before an event whose handler keeps failing is parked in the dead-letter stream
   * (default 5). Transient faults (NATS connection, timeouts) do not count: through an outage
   * a message is retried for as long as it takes.
   */
  maxDeliveries?: number;
  /**
   * For stages before the terminal one: an event whose request is past its deadline is ended
   * with `chat.failed` (`deadline_exceeded`) instead of being handled (see deadline.ts).
   */
  failPastDeadline?: boolean;
  log: Logger;
  /** Decides what an event leads to; the bus publishes it, answers, then acks (decided.ts). */
  handler: (event: Received<C>, delivery: Delivery) => Promise<Decided<Emitted<C>>>;
}

export interface Consumption {
  stop(): Promise<void>;
}

/**
 * Consumes events with a durable pull consumer and runs handlers concurrently (a consume loop
 * that awaits each message caps at ~1,000 msg/s), under the delivery rule of `createRunner`
 * (runner.ts): the handler returns what it decided, the bus publishes those events and awaits
 * the stream's acks, sends the replies, and only then acks the input (the ack itself may wait up
 * to ACK_LINGER_MS to share a write, see acks.ts); failures are redelivered with a delay, poison
 * is parked in the dead-letter stream. For a consumer whose caller decides when to take each
 * message, see `pullEvents` (pulled.ts).
 */
export async function consumeEvents<C extends ConsumerSpec>(bus: Bus, opts: ConsumeOptions<C>): Promise<Consumption> {
  const { durable } = opts.consumer;
  const ackWaitMs = opts.ackWaitMs ?? DEFAULT_ACK_WAIT_MS;
  await ensureDurable(bus, opts.consumer, { maxAckPending: opts.concurrency, ackWaitMs, ...(opts.deliverAll ? { deliverAll: true } : {}) });
  // its info requests (after missed heartbeats) time out at CONSUME_PULL's, not the connection's 10 s
  const js = jetstream(bus.nc, { timeout: CONSUME_PULL.infoTimeoutMs });
  const consumer = await retryFor(30_000, () => js.consumers.get(Topology.stream.name, durable));
  const runner = createRunner(bus, {
    consumer: opts.consumer,
    ackWaitMs,
    ...(opts.maxDeliveries !== undefined ? { maxDeliveries: opts.maxDeliveries } : {}),
    ...(opts.failPastDeadline ? { failPastDeadline: true } : {}),
    // a held ack keeps its max_ack_pending slot for up to ACK_LINGER_MS, which only a consumer with few slots would feel
    holdAcks: opts.concurrency >= MIN_CONCURRENCY_TO_HOLD_ACKS,
    log: opts.log,
    handler: opts.handler,
  });
  const handle = runner.handle;
  const maxMessages = Math.max(1, Math.min(opts.concurrency, 1000));
  const messages =
    opts.lingerMs !== undefined
      ? pullInBatches(consumer, { lingerMs: opts.lingerMs, maxBatch: maxMessages, log: opts.log }, handle)
      : await consumer.consume({
          max_messages: maxMessages,
          expires: CONSUME_PULL.expiresMs,
          idle_heartbeat: CONSUME_PULL.idleHeartbeatMs,
          callback: (msg) => {
            void handle(msg);
          },
        });
  const replays = await consumeReplays(bus, { durable, log: opts.log, ...(opts.ackWaitMs !== undefined ? { ackWaitMs: opts.ackWaitMs } : {}) }, handle);
  return {
    async stop() {
      await messages.close();
      await replays.close();
      await runner.stop();
      flushAcks();
    },
  };
}
