import { headers as natsHeaders, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { Headers, isChunk, isResultSubject, Subjects, type ChatReply, type RequestContext } from '@sluice/contracts';
import { SpanAttributes, startProducerSpan, tracingOn } from '@sluice/telemetry';
import { flushSoon } from './flush-patch.js';

const encoder = new TextEncoder();

/**
 * What marks a stored result (`sluice.results.<id>`): the request's tenant (the one tenant that may
 * fetch it), its webhook (an async request's, `ctx.webhook`: the ledger POSTs the answer there), and
 * `keep` (`ctx.keepResult`, a request with an `Idempotency-Key`: its final answer is stored on its
 * result subject as well as sent to its inbox).
 */
export interface ResultMark {
  tenant?: string | undefined;
  webhook?: string | undefined;
  keep?: boolean | undefined;
}

/** The mark of a request's stored answer, from its tenant and context. */
export function resultMark(tenant: string | undefined, ctx: Pick<RequestContext, 'webhook' | 'keepResult'> | undefined): ResultMark {
  return { tenant, webhook: ctx?.webhook, keep: ctx?.keepResult };
}

/**
 * Sends one reply message to a client's inbox over core NATS, written at the next microtask
 * rather than at the end of the loop's turn (flush-patch.ts: a client is waiting for it). Fire
 * and forget by design: the terminal event is already in the stream, so a client that went away
 * loses nothing it cannot fetch later.
 *
 * A result subject (`sluice.results.<id>`, a request held or sent async) is no inbox: the
 * SLUICE_RESULTS stream stores what is published there, marked with the tenant and webhook
 * (`mark`). Streamed chunks are not sent there: the final result holds the whole answer. A request
 * marked `keep` answers its inbox and stores its final answer on its result subject too. The input
 * that led to the reply is acked after this publish on the same connection, so the server has the
 * result before it forgets the input; a redelivery publishes it again and the stream keeps one
 * message per subject.
 */
export function sendReply(nc: NatsConnection, replyTo: string | undefined, reply: ChatReply, mark: ResultMark = {}): void {
  if (!replyTo) return;
  const stored = isResultSubject(replyTo);
  if (mark.keep && !stored && !isChunk(reply) && reply.requestId) sendReply(nc, Subjects.result(reply.requestId), reply, { tenant: mark.tenant });
  if (stored && isChunk(reply)) return;
  const { tenant, webhook } = mark;
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
