import { createHash } from 'node:crypto';
import { headers as natsHeaders, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { Headers, isChunk, isResultSubject, Subjects, type ChatReply, type RequestContext } from '@sluice/contracts';
import { SpanAttributes, startProducerSpan, tracingOn } from '@sluice/telemetry';
import { flushSoon } from './flush-patch.js';
import type { Bus } from './connect.js';
import { DEFAULT_PUBLISH_RETRY_MS, PUBLISH_TRY_TIMEOUT_MS } from './publish.js';
import { retryFor } from './retry.js';

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
 * marked `keep` answers its inbox and stores its final answer on its result subject too. Such a
 * core publish into the stream is lost while the stream has no leader (a cluster node down): a
 * stage that ends a request answers with `answer`, which awaits the stream's ack of what it stores.
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

/**
 * Answers a request as a terminal stage must: the reply goes to its inbox at once (core NATS, as
 * `sendReply`), and what is stored (a reply on a result subject; a final answer marked `keep`, on
 * its result subject too) is published to SLUICE_RESULTS through JetStream and resolves on the
 * stream's ack, retried with the same msg id for `retryForMs`. Await it before acking the input.
 *
 * A core publish into the stream, as `sendReply` does, is dropped without a word while the stream
 * has no leader: on a cluster, for the seconds after a node dies. The answer of a request with an
 * `Idempotency-Key` was then never stored, its retry found none and ran the request again
 * (docs/cluster.md); an async request's answer was lost the same way.
 *
 * @example
 * await answer(bus, ctx.replyTo, reply, resultMark(event.tenant, ctx));
 */
export async function answer(
  bus: Pick<Bus, 'nc' | 'js'>,
  replyTo: string | undefined,
  reply: ChatReply,
  mark: ResultMark = {},
  retryForMs = DEFAULT_PUBLISH_RETRY_MS,
): Promise<void> {
  if (!replyTo) return;
  if (!isResultSubject(replyTo)) {
    sendReply(bus.nc, replyTo, reply);
    if (!mark.keep || isChunk(reply) || !reply.requestId) return;
    await storeReply(bus, Subjects.result(reply.requestId), reply, { tenant: mark.tenant }, retryForMs);
    return;
  }
  // the final result holds the whole answer: chunks are not stored
  if (isChunk(reply)) return;
  await storeReply(bus, replyTo, reply, mark, retryForMs);
}

/**
 * One stored reply, awaiting the stream's ack. The msg id is the subject and a hash of the reply,
 * so a try that landed without its ack is not stored twice, while a later, different reply on the
 * same subject (the answer after a `held` notice) is.
 */
async function storeReply(bus: Pick<Bus, 'nc' | 'js'>, subject: string, reply: ChatReply, mark: ResultMark, retryForMs: number): Promise<void> {
  const data = encoder.encode(JSON.stringify(reply));
  const hdrs = resultHeaders(mark.tenant, mark.webhook);
  const msgID = `${subject}:${createHash('sha256').update(data).digest('base64url').slice(0, 22)}`;
  const send = () => retryFor(retryForMs, () => bus.js.publish(subject, data, { headers: hdrs, msgID, timeout: PUBLISH_TRY_TIMEOUT_MS }));
  if (!tracingOn()) {
    await send();
    return;
  }
  const span = startProducerSpan({ name: 'store reply', destination: subject, attributes: { [SpanAttributes.requestId]: reply.requestId } });
  if (span.headers.traceparent) hdrs.set(Headers.traceparent, span.headers.traceparent);
  if (span.headers.tracestate) hdrs.set(Headers.tracestate, span.headers.tracestate);
  try {
    await send();
  } catch (e) {
    span.fail(e);
    throw e;
  } finally {
    span.end();
  }
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
