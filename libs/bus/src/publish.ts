import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import { Headers, subjectOf, type AnyEvent, type SluiceEvent, type EventType } from '@sluice/contracts';
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

/**
 * Publishes an event on its subject (`subjectOf`) and waits for the stream's ack. The event id is
 * the Nats-Msg-Id, so a repeat within the duplicate window is dropped by the server.
 */
export async function publishEvent(js: JetStreamClient, event: SluiceEvent<EventType> | AnyEvent, opts: PublishOptions = {}): Promise<PubAck> {
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
): Promise<PubAck> {
  let hdrs: MsgHdrs | undefined;
  if (trace.traceparent) {
    hdrs = natsHeaders();
    hdrs.set(Headers.traceparent, trace.traceparent);
    if (trace.tracestate) hdrs.set(Headers.tracestate, trace.tracestate);
  }
  const data = encoder.encode(JSON.stringify(event));
  // held acks go out in the same socket write as this publish
  flushAcks();
  return retryFor(opts.retryForMs ?? DEFAULT_PUBLISH_RETRY_MS, () =>
    js.publish(subject, data, { msgID: event.id, timeout: PUBLISH_TRY_TIMEOUT_MS, ...(hdrs ? { headers: hdrs } : {}) }),
  );
}
