import { headers as natsHeaders, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { Headers, isChunk, type ChatReply } from '@sluice/contracts';
import { SpanAttributes, startProducerSpan, tracingOn } from '@sluice/telemetry';
import { flushSoon } from './flush-patch.js';

const encoder = new TextEncoder();

/**
 * Sends one reply message to a client's inbox over core NATS, written at the next microtask
 * rather than at the end of the loop's turn (flush-patch.ts: a client is waiting for it). Fire
 * and forget by design: the terminal event is already in the stream, so a client that went away
 * loses nothing it cannot fetch later.
 */
export function sendReply(nc: NatsConnection, replyTo: string | undefined, reply: ChatReply): void {
  if (!replyTo) return;
  const data = encoder.encode(JSON.stringify(reply));
  // the final answer gets a span; streamed chunks do not (dozens per answer, each telling nothing new)
  if (!tracingOn() || isChunk(reply)) {
    publish(nc, replyTo, data);
    return;
  }
  const span = startProducerSpan({
    name: 'publish reply',
    destination: replyTo,
    temporaryDestination: true,
    attributes: { [SpanAttributes.requestId]: reply.requestId },
  });
  const hdrs = natsHeaders();
  if (span.headers.traceparent) hdrs.set(Headers.traceparent, span.headers.traceparent);
  if (span.headers.tracestate) hdrs.set(Headers.tracestate, span.headers.tracestate);
  publish(nc, replyTo, data, hdrs);
  span.end();
}

function publish(nc: NatsConnection, subject: string, data: Uint8Array, headers?: MsgHdrs): void {
  try {
    nc.publish(subject, data, headers ? { headers } : undefined);
    flushSoon(nc);
  } catch {
    // connection closing: the answer is in the stream
  }
}
