import { nanos } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, type JsMsg } from '@nats-io/jetstream';
import { Headers, replayDurable, Subjects, Topology } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import type { Bus } from './connect.js';
import { createOrFind } from './create.js';
import { pullInBatches } from './linger.js';
import { retryFor } from './retry.js';

/** Where a replayed dead letter came from, read from its headers. */
export interface Replayed {
  /** Its sequence in SLUICE_EVENTS. */
  seq: number;
  subject: string;
  /** Tries before it was parked. */
  deliveries: number;
}

/**
 * The durable's second input: dead letters an operator sent back (`npm run config -- replay`),
 * on `sluice.dlq.replay.<durable>` in SLUICE_DLQ, handled exactly like the stream's messages.
 * Pulled in lazy batches: replays are rare, so an idle service pays one pull per 5 s for them.
 */
export async function consumeReplays(
  bus: Bus,
  opts: { durable: string; ackWaitMs?: number; log: Logger },
  handle: (msg: JsMsg, replayed: Replayed) => Promise<void>,
): Promise<{ close(): Promise<void> }> {
  const stream = Topology.deadLetters.name;
  const durable = replayDurable(opts.durable);
  const config = {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: Subjects.replay(opts.durable),
    max_ack_pending: 64,
    ack_wait: nanos(opts.ackWaitMs ?? 5_000),
    max_deliver: -1,
  };
  await createOrFind(
    () => bus.jsm.consumers.add(stream, config),
    () => bus.jsm.consumers.info(stream, durable),
  );
  // tried again, as ensureDurable: a durable without a leader yet times out
  const consumer = await retryFor(30_000, () => bus.js.consumers.get(stream, durable));
  return pullInBatches(consumer, { lingerMs: 100, maxBatch: 64, log: opts.log }, (msg) =>
    handle(msg, {
      seq: Number(msg.headers?.get(Headers.parkedSeq) || 0),
      subject: msg.headers?.get(Headers.parkedSubject) || msg.subject,
      deliveries: Number(msg.headers?.get(Headers.parkedDeliveries) || 0),
    }),
  );
}
