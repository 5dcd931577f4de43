import { nanos, type MsgHdrs } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, type JsMsg } from '@nats-io/jetstream';
import { Headers, parseEvent, Topology, type AnyEvent, type ConsumerSpec } from '@sluice/contracts';
import { SpanAttributes, traceProcess, tracingOn, type Logger } from '@sluice/telemetry';
import type { Bus } from './connect.js';
import { createOrFind } from './create.js';
import { ackSoon } from './acks.js';
import { resultMark } from './reply.js';
import type { Replayed } from './replay.js';
import { DEFAULT_MAX_DELIVERIES, isTransient, park } from './dead-letter.js';
import { pastDeadline } from './deadline.js';
import { carryOut, type Decided, type Emitted, type Received } from './decided.js';
import type { PublishOptions } from './publish.js';
import { retryFor } from './retry.js';

// The delivery rule of every consumer, whoever pulls its messages: consumeEvents (a standing
// pull or lingering batches) and pullEvents (the caller asks for each message, e.g. the
// invoker's lane scheduler).

/** Redelivery delay of a message whose consumer died without acking it. */
export const DEFAULT_ACK_WAIT_MS = 5_000;

/** Thrown by a handler for input that can never succeed: the message is parked at once, not redelivered. */
export class PoisonMessage extends Error {}

export interface Delivery {
  /** Stream sequence of the message. */
  seq: number;
  /** How many times it has been delivered (1 on the first; a replayed dead letter counts its earlier tries). */
  deliveryCount: number;
  /** True when an operator sent the event back from the dead-letter stream. */
  replayed?: boolean;
  headers?: MsgHdrs;
  traceparent?: string;
  tracestate?: string;
}

/**
 * A delivery's trace context as `publishEvent` takes it, so the event a handler publishes
 * continues the trace of the event it handles (the fallback when no span is active).
 */
export function traceOf(delivery: Delivery): PublishOptions {
  return {
    ...(delivery.traceparent ? { traceparent: delivery.traceparent } : {}),
    ...(delivery.tracestate ? { tracestate: delivery.tracestate } : {}),
  };
}

/** The durable a consumer spec names, created with these settings or brought to them. */
export interface DurableSettings {
  /** The consumer's max_ack_pending: most messages in flight across all replicas. */
  maxAckPending: number;
  ackWaitMs: number;
  /** Where a new durable starts; defaults to new messages only. */
  deliverAll?: boolean;
}

/**
 * Creates the durable pull consumer of `spec` (every replica does, at start), or updates its
 * max_ack_pending and ack_wait when they differ from `settings`. The filter of an existing
 * durable is left as it is. Tried again for up to a minute: a process that starts while a node
 * of the cluster is down meets API timeouts until the durable has a leader, and crashed on the
 * first (its supervisor's backoff then kept it down longer).
 */
export async function ensureDurable(bus: Bus, spec: ConsumerSpec, settings: DurableSettings): Promise<void> {
  await retryFor(60_000, () => ensureDurableOnce(bus, spec, settings));
}

async function ensureDurableOnce(bus: Bus, spec: ConsumerSpec, settings: DurableSettings): Promise<void> {
  const stream = Topology.stream.name;
  const { durable, filter } = spec;
  const config = {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: settings.deliverAll ? DeliverPolicy.All : DeliverPolicy.New,
    filter_subject: filter,
    max_ack_pending: settings.maxAckPending,
    ack_wait: nanos(settings.ackWaitMs),
    max_deliver: -1,
  };
  try {
    const info = await bus.jsm.consumers.info(stream, durable);
    if (info.config.max_ack_pending !== settings.maxAckPending || info.config.ack_wait !== config.ack_wait) {
      await bus.jsm.consumers.update(stream, durable, { max_ack_pending: settings.maxAckPending, ack_wait: config.ack_wait });
    }
  } catch {
    await createOrFind(
      () => bus.jsm.consumers.add(stream, config),
      () => bus.jsm.consumers.info(stream, durable),
    );
  }
}

export interface RunnerOptions<C extends ConsumerSpec = ConsumerSpec> {
  consumer: C;
  ackWaitMs: number;
  maxDeliveries?: number;
  failPastDeadline?: boolean;
  /** Hold acks briefly to share a write (acks.ts); only for consumers with many slots. */
  holdAcks: boolean;
  log: Logger;
  handler: (event: Received<C>, delivery: Delivery) => Promise<Decided<Emitted<C>>>;
}

/** Runs messages of one durable under the delivery rule, and keeps the ones it holds alive. */
export interface Runner {
  /** Handles one message of the stream, or a dead letter sent back by replay. Never throws. */
  handle: (msg: JsMsg, replayed?: Replayed) => Promise<void>;
  /** Keeps a message pulled but not yet handled from being redelivered (working() heartbeats) until `handle` or `release`. */
  hold: (msg: JsMsg) => void;
  /** Stops keeping a held message alive (the caller naks it or hands it to `handle`). */
  release: (msg: JsMsg) => void;
  /** Resolves once no message is held or being handled; then stops the heartbeat. */
  stop(): Promise<void>;
}

/**
 * The delivery rule: the handler returns what it decided, the bus publishes those events and
 * awaits the stream's acks, sends the replies, and only then acks the input. A handler is given
 * only the event types its consumer receives, and may decide only those it emits (else it is a
 * bug: thrown, and parked after its tries). A throw naks the input with a delay. A malformed
 * event, a PoisonMessage, or an event whose handler failed `maxDeliveries` times for reasons
 * other than a transient fault is parked in the dead-letter stream (dead-letter.ts) and
 * terminated, so one bad event never stops a consumer. Messages that run long are kept from
 * redelivery by a heartbeat (`working()` every ackWait / 3).
 */
export function createRunner<C extends ConsumerSpec>(bus: Bus, opts: RunnerOptions<C>): Runner {
  const { durable, service } = opts.consumer;
  const ackWaitMs = opts.ackWaitMs;
  const receives = new Set<string>(opts.consumer.receives);
  const emits = new Set<string>(opts.consumer.emits);
  // started-at of every message held or being handled; one timer sends working() for the slow ones
  const inFlight = new Map<JsMsg, number>();
  let drained: (() => void) | undefined;
  const beatEveryMs = Math.max(100, Math.floor(ackWaitMs / 3));
  const heartbeat = setInterval(() => {
    const due = Date.now() - beatEveryMs;
    for (const [msg, startedAt] of inFlight) if (startedAt <= due) msg.working();
  }, beatEveryMs);
  heartbeat.unref();
  const maxDeliveries = opts.maxDeliveries ?? DEFAULT_MAX_DELIVERIES;
  const forget = (msg: JsMsg) => {
    inFlight.delete(msg);
    if (inFlight.size === 0) drained?.();
  };

  /**
   * Handles one message of the stream, or a dead letter sent back by replay (`replayed`: its
   * sequence, subject and earlier tries come from the dead letter's headers).
   */
  const handle = async (msg: JsMsg, replayed?: Replayed) => {
    inFlight.set(msg, Date.now());
    const seq = replayed?.seq ?? msg.seq;
    const deliveries = (replayed?.deliveries ?? 0) + msg.info.deliveryCount;
    let event: AnyEvent | undefined;
    // a failed replay parks again under its own id, so it is not taken for the first parking
    const parkNow = async (error: unknown) => {
      await park(bus, {
        durable,
        service,
        seq,
        subject: replayed?.subject ?? msg.subject,
        data: msg.data,
        headers: msg.headers,
        deliveries,
        error,
        event,
        attempt: replayed ? `replay-${msg.seq}` : undefined,
      });
      opts.log.error({ err: error, seq, deliveries, type: event?.type, requestId: event?.requestId }, 'parked an event in the dead-letter stream');
      msg.term();
    };
    try {
      try {
        event = parseEvent(msg.data);
      } catch (e) {
        // it will not parse next time either
        await parkNow(e);
        return;
      }
      // the filter lets only these through; anything else was published under a wrong subject
      if (!receives.has(event.type)) throw new PoisonMessage(`${durable} receives ${[...receives].join(', ')}, not ${event.type}`);
      const delivery = deliveryOf(msg, seq, deliveries, replayed !== undefined);
      // a stored result is marked with the request's tenant, webhook and keep
      const mark = resultMark(event.tenant, 'ctx' in event.data ? event.data.ctx : undefined);
      const expired = opts.failPastDeadline ? pastDeadline(event, service, Date.now()) : undefined;
      // decide, publish the decision and await its acks, then answer: all inside the consumer
      // span, so the publish spans are its children
      let redeliverInMs: number | undefined;
      const run = async () => {
        const decision: Decided = expired
          ? { events: [expired.event], replies: [{ to: expired.replyTo, reply: expired.reply }] }
          : await opts.handler(event as Received<C>, delivery);
        for (const e of decision.events) if (!expired && !emits.has(e.type)) throw new Error(`${durable} may not emit ${e.type}`);
        await carryOut(bus, decision, traceOf(delivery), mark);
        redeliverInMs = decision.redeliverInMs;
      };
      if (tracingOn()) await traceProcess(processFacts(msg, event, durable), delivery, run);
      else await run();
      if (expired) opts.log.warn({ seq, type: event.type, requestId: event.requestId }, 'request past its deadline; ended it');
      // held briefly to share a write with the next publish (acks.ts): a write per ack was a
      // large part of each service's CPU at low rates. A held ack keeps its max_ack_pending slot
      // for up to ACK_LINGER_MS, which only a consumer with few slots would feel.
      // the handler asked to see the event again later (its own backoff): not a failure, never parked
      if (redeliverInMs !== undefined) msg.nak(redeliverInMs);
      else if (opts.holdAcks) ackSoon(msg);
      else msg.ack();
    } catch (e) {
      const poison = e instanceof PoisonMessage || (deliveries >= maxDeliveries && !isTransient(e));
      try {
        if (poison) {
          await parkNow(e);
          return;
        }
      } catch (parkErr) {
        opts.log.error({ err: parkErr, seq }, 'could not park an event; redelivering it');
      }
      const delay = Math.min(30_000, 250 * 2 ** Math.min(msg.info.deliveryCount, 7));
      opts.log.warn({ err: e, seq, delivery: deliveries, delayMs: delay }, 'handler failed; redelivering');
      msg.nak(delay);
    } finally {
      forget(msg);
    }
  };

  return {
    handle,
    hold: (msg) => void inFlight.set(msg, Date.now()),
    release: forget,
    async stop() {
      if (inFlight.size > 0) await new Promise<void>((r) => (drained = r));
      clearInterval(heartbeat);
    },
  };
}

function deliveryOf(msg: JsMsg, seq: number, deliveries: number, replayed: boolean): Delivery {
  const traceparent = msg.headers?.get(Headers.traceparent) || undefined;
  const tracestate = msg.headers?.get(Headers.tracestate) || undefined;
  return {
    seq,
    deliveryCount: deliveries,
    ...(replayed ? { replayed } : {}),
    ...(msg.headers ? { headers: msg.headers } : {}),
    ...(traceparent ? { traceparent } : {}),
    ...(tracestate ? { tracestate } : {}),
  };
}

function processFacts(msg: JsMsg, event: AnyEvent, durable: string) {
  return {
    name: `process ${event.type}`,
    destination: msg.subject,
    messageId: event.id,
    consumerGroup: durable,
    attributes: {
      [SpanAttributes.requestId]: event.requestId,
      [SpanAttributes.tenant]: event.tenant,
      [SpanAttributes.eventType]: event.type,
      [SpanAttributes.streamSeq]: msg.seq,
      [SpanAttributes.deliveryCount]: msg.info.deliveryCount,
    },
  };
}
