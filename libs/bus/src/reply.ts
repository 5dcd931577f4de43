import { headers as natsHeaders, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { Headers, isChunk, isResultSubject, type ChatReply } from '@sluice/contracts';
import { SpanAttributes, startProducerSpan, tracingOn } from '@sluice/telemetry';
import { flushSoon } from './flush-patch.js';

const encoder = new TextEncoder();

/**
 * Sends one reply message to a client's inbox over core NATS, written at the next microtask
 * rather than at the end of the loop's turn (flush-patch.ts: a client is waiting for it). Fire
 * and forget by design: the terminal event is already in the stream, so a client that went away
 * loses nothing it cannot fetch later.
 *
 * A result subject (`sluice.results.<id>`, a request held or sent async) is no inbox: the
 * SLUICE_RESULTS stream stores what is published there, with `tenant` as a header (only that
 * tenant may fetch it) and `webhook` (an async request's: the ledger POSTs the answer there). Streamed chunks are not sent there: the final result holds the whole
 * answer. The input that led to the reply is acked after this publish on the same connection,
 * so the server has the result before it forgets the input; a redelivery publishes it again and
 * the stream keeps one message per subject.
 */
export function sendReply(nc: NatsConnection, replyTo: string | undefined, reply: ChatReply, tenant?: string, webhook?: string): void {
  if (!replyTo) return;
  const stored = isResultSubject(replyTo);
  if (stored && isChunk(reply)) return;
  const data = encoder.encode(JSON.stringify(reply));
  // the final answer gets a span; streamed chunks do not (dozens per answer, each telling nothing new)
  if (!tracingOn() || isChunk(reply)) {
    publish(nc, replyTo, data, stored ? resultHeaders(tenant, webhook) : undefined);
    return;
  }
  const span = startProducerSpan({
    name: 'publish reply',
    destination: replyTo,
    temporaryDestination: true,
    attributes: { [SpanAttributes.requestId]: reply.requestId },
  });
  const hdrs = stored ? resultHeaders(tenant, webhook) : natsHeaders();
  if (span.headers.traceparent) hdrs.set(Headers.traceparent, span.headers.traceparent);
  if (span.headers.tracestate) hdrs.set(Headers.tracestate, span.headers.tracestate);
  publish(nc, replyTo, data, hdrs);
  span.end();
}

function resultHeaders(tenant: string | undefined, webhook: string | undefined): MsgHdrs {
  const hdrs = natsHeaders();
  if (tenant) hdrs.set(Headers.resultTenant, tenant);
  if (webhook) hdrs.set(Headers.resultWebhook, webhook);
  return hdrs;
}

function publish(nc: NatsConnection, subject: string, data: Uint8Array, headers?: MsgHdrs): void {
  try {
    nc.publish(subject, data, headers ? { headers } : undefined);
    flushSoon(nc);
  } catch {
    // connection closing: the answer is in the stream
  }
}
