import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import { Headers, msgIdOf, subjectOf, TERMINAL_TYPES, type AnyEvent, type SluiceEvent, type EventType } from '@sluice/contracts';
import { retryFor } from './retry.js';
import { flushAcks } from './acks.js';
import { SpanAttributes, startProducerSpan, tracingOn, type TraceHeaders } from '@sluice/telemetry';

const encoder = new TextEncoder();

/** Default for `PublishOptions.retryForMs`. */
export const DEFAULT_PUBLISH_RETRY_MS = 30_000;

/**
 * How long one try of a publish waits for the stream's ack before it is sent again (same msg id,
 * so never stored twice). A publish that reached a stream leader which then died is never acked:
 * with the connection's 10 s timeout each such publish held its request (and its stage's input)
 * for 10 s after a new leader was already taking writes, seconds earlier (docs/cluster.md). An ack
 * takes milliseconds, and well under a second on two loaded cores.
 */
export const PUBLISH_TRY_TIMEOUT_MS = 2_000;

export interface PublishOptions {
  /**
   * W3C trace context to carry to the next hop. With tracing on, the publish span's own context
   * travels instead, and this is its parent only when no span is active (a handler run by
   * `consumeEvents` always has one).
   */
  traceparent?: string;
  tracestate?: string;
  /**
   * How long to keep retrying (each try with the same msg id, so a retry never doubles the
   * event). The default outlasts a nats-server restart: a handler that already has an upstream
   * answer in hand should wait for the server, not throw and have its input redelivered.
   */
  retryForMs?: number;
}

/** The stream's ack of a published event. */
export interface Published extends PubAck {
  /**
   * Set when a terminal event came back a duplicate of another terminal event of its request
   * (contracts `msgIdOf`): the type the request had already ended with. Its publisher's reply
   * must not go out (the client has, or will get, the other one).
   */
  endedAs?: EventType;
}

/**
 * Publishes an event on its subject (`subjectOf`) and waits for the stream's ack. The Nats-Msg-Id
 * is `msgIdOf(event)` (the event id; one id for all of a request's terminal events), so a repeat
 * within the duplicate window is dropped by the server.
 */
export async function publishEvent(js: JetStreamClient, event: SluiceEvent<EventType> | AnyEvent, opts: PublishOptions = {}): Promise<Published> {
  // chat.routed goes out in its lane (sluice.evt.chat.routed.<lane>.<tenant>)
  const subject = subjectOf(event as AnyEvent);
  if (!tracingOn()) return send(js, subject, event, opts, opts);
  const span = startProducerSpan(
    {
      name: `publish ${event.type}`,
      destination: subject,
      messageId: event.id,
      attributes: { [SpanAttributes.requestId]: event.requestId, [SpanAttributes.tenant]: event.tenant, [SpanAttributes.eventType]: event.type },
    },
    opts,
  );
  try {
    return await send(js, subject, event, span.headers, opts);
  } catch (e) {
    span.fail(e);
    throw e;
  } finally {
    span.end();
  }
}

async function send(
  js: JetStreamClient,
  subject: string,
  event: SluiceEvent<EventType> | AnyEvent,
  trace: TraceHeaders,
  opts: PublishOptions,
): Promise<Published> {
  let hdrs: MsgHdrs | undefined;
  if (trace.traceparent) {
    hdrs = natsHeaders();
    hdrs.set(Headers.traceparent, trace.traceparent);
    if (trace.tracestate) hdrs.set(Headers.tracestate, trace.tracestate);
  }
  const data = encoder.encode(JSON.stringify(event));
  // held acks go out in the same socket write as this publish
  flushAcks();
  const ack = await retryFor(opts.retryForMs ?? DEFAULT_PUBLISH_RETRY_MS, () =>
    js.publish(subject, data, { msgID: msgIdOf(event), timeout: PUBLISH_TRY_TIMEOUT_MS, ...(hdrs ? { headers: hdrs } : {}) }),
  );
  if (!ack.duplicate || !TERMINAL_TYPES.has(event.type)) return ack;
  const first = await storedEvent(js, ack);
  return first && first.id !== event.id ? { ...ack, endedAs: first.type } : ack;
}

/**
 * The event a duplicate's ack points at (the server answers a duplicate with the sequence of the
 * message it kept). Undefined when that is not known: a sequence of 0 (on a cluster, a duplicate
 * of a write still being proposed), or the read failed; the caller then treats the publish as its
 * own (a reply that may be the request's second is better than none).
 */
async function storedEvent(js: JetStreamClient, ack: PubAck): Promise<Pick<AnyEvent, 'id' | 'type'> | undefined> {
  if (!ack.seq) return undefined;
  try {
    const jsm = await js.jetstreamManager(false);
    const m = await jsm.streams.getMessage(ack.stream, { seq: ack.seq });
    return m ? m.json<Pick<AnyEvent, 'id' | 'type'>>() : undefined;
  } catch {
    return undefined;
  }
}
