import type { Consumer, ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import { Topology, type ConsumerSpec } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import type { Bus } from './connect.js';
import { flushAcks } from './acks.js';
import { consumeReplays } from './replay.js';
import type { Decided, Emitted, Received } from './decided.js';
import { createRunner, DEFAULT_ACK_WAIT_MS, ensureDurable, type Delivery } from './runner.js';
import { retryFor } from './retry.js';

/** How long a pull waits on the server for messages it asked for (the client library's minimum is 1 s). */
export const PULL_EXPIRES_MS = 5_000;

export interface PullOptions<C extends ConsumerSpec = ConsumerSpec> {
  /** Which durable, through which filter subject (an entry of `Consumers` or `invokerConsumer`). */
  consumer: C;
  /** The durable's max_ack_pending: a server-side bound across replicas; the caller bounds what it takes. */
  maxAckPending: number;
  ackWaitMs?: number;
  maxDeliveries?: number;
  /** Where a new durable starts; defaults to new messages only. */
  deliverAll?: boolean;
  log: Logger;
  handler: (event: Received<C>, delivery: Delivery) => Promise<Decided<Emitted<C>>>;
}

/** A message pulled and not yet started: run it (the delivery rule applies) or put it back. */
export interface Pulled {
  /** Stream sequence. */
  readonly seq: number;
  /** Messages of the durable still in the stream behind this one, as the server counted when it sent it. */
  readonly pending: number;
  /** Handles it under the delivery rule; resolves when it is acked, naked or parked. Never throws. */
  run(): Promise<void>;
  /** Gives it back to the stream unhandled, for any replica to take at once. */
  putBack(): void;
}

/** One durable whose messages are taken only when the caller asks (`pull`). */
export interface PulledConsumer {
  readonly durable: string;
  /**
   * Asks the server for up to `max` messages; each is handed to `onMessage` as it arrives, held
   * alive (working() heartbeats) until it is run or put back. Resolves when `max` came or the pull
   * expired (PULL_EXPIRES_MS) with fewer. One pull at a time per consumer is the caller's rule.
   */
  pull(max: number, onMessage: (msg: Pulled) => void): Promise<void>;
  /** Ends the open pull, puts back what is held, waits for what runs, flushes acks. */
  stop(): Promise<void>;
}

/**
 * A durable pull consumer driven by its caller: nothing is taken from the stream until the
 * caller pulls, so waiting messages stay in the stream (visible as the consumer's pending count,
 * taken by whichever replica has room) rather than in a process's memory. For a scheduler that
 * shares slots among several consumers (the invoker's lanes); `consumeEvents` is the standing
 * pull for everyone else. Dead letters replayed by an operator are handled at once, outside the
 * caller's scheduling (rare, and asked for).
 *
 * Costs: a pull is a request to the server and a subscription of its own, so a consumer pulled
 * one message at a time takes at most one message per round trip (~0.3 ms); pull `max` > 1 when
 * there is room for more.
 */
export async function pullEvents<C extends ConsumerSpec>(bus: Bus, opts: PullOptions<C>): Promise<PulledConsumer> {
  const { durable } = opts.consumer;
  const ackWaitMs = opts.ackWaitMs ?? DEFAULT_ACK_WAIT_MS;
  await ensureDurable(bus, opts.consumer, { maxAckPending: opts.maxAckPending, ackWaitMs, ...(opts.deliverAll ? { deliverAll: true } : {}) });
  // tried again, as ensureDurable: a durable without a leader yet times out
  const consumer: Consumer = await retryFor(30_000, () => bus.js.consumers.get(Topology.stream.name, durable));
  const runner = createRunner(bus, {
    consumer: opts.consumer,
    ackWaitMs,
    ...(opts.maxDeliveries !== undefined ? { maxDeliveries: opts.maxDeliveries } : {}),
    holdAcks: true,
    log: opts.log,
    handler: opts.handler,
  });
  const replays = await consumeReplays(bus, { durable, log: opts.log, ...(opts.ackWaitMs !== undefined ? { ackWaitMs: opts.ackWaitMs } : {}) }, runner.handle);
  const held = new Set<JsMsg>();
  let open: ConsumerMessages | undefined;
  let stopped = false;

  const pulled = (msg: JsMsg): Pulled => {
    held.add(msg);
    runner.hold(msg);
    let taken = false;
    const take = () => {
      if (taken) throw new Error(`message ${msg.seq} of ${durable} was already run or put back`);
      taken = true;
      held.delete(msg);
    };
    return {
      seq: msg.seq,
      pending: msg.info.pending,
      run: () => {
        take();
        return runner.handle(msg);
      },
      putBack: () => {
        take();
        runner.release(msg);
        msg.nak();
      },
    };
  };

  return {
    durable,
    async pull(max, onMessage) {
      if (stopped) return;
      try {
        open = await consumer.fetch({ max_messages: Math.max(1, Math.floor(max)), expires: PULL_EXPIRES_MS });
        for await (const msg of open) {
          if (stopped) {
            msg.nak();
            continue;
          }
          onMessage(pulled(msg));
        }
      } catch (err) {
        // a lost connection or a missing consumer: the caller pulls again after a pause
        if (!stopped) opts.log.warn({ err, durable }, 'pull failed');
        if (!stopped) await new Promise((r) => setTimeout(r, 250));
      } finally {
        open = undefined;
      }
    },
    async stop() {
      stopped = true;
      await open?.close();
      for (const msg of held) {
        runner.release(msg);
        msg.nak();
      }
      held.clear();
      await replays.close();
      await runner.stop();
      flushAcks();
    },
  };
}
