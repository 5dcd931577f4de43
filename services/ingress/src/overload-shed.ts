import type { Msg, NatsConnection } from '@nats-io/transport-node';
import type { FastifyReply } from 'fastify';
import { sendReply } from '@sluice/bus';
import { Headers, type SluiceEvent } from '@sluice/contracts';
import type { IngressDeps } from './deps.js';
import { rejectedEvent, type RejectedFacts } from './events.js';
import { sendError } from './http-answer.js';
import { continueTrace, newRequestId } from './ids.js';
import type { Place } from './overload-gate.js';
import { RequestRejected } from './rejection.js';
import { authenticate } from './tenants.js';

type Shed = Extract<Place, { kind: 'shed' }>;

/** The `chat.rejected` of a shed request: 503 `service_busy` with its Retry-After in `retryAfterMs`. */
function shedEvent(requestId: string, shed: Shed, facts: RejectedFacts, now: number): SluiceEvent<'chat.rejected'> {
  const event = rejectedEvent(requestId, new RequestRejected('service_busy', shed.message), facts, now);
  return { ...event, data: { ...event.data, retryAfterMs: shed.retryAfterMs } };
}

/**
 * Answers a shed HTTP request at once (503 `service_busy`, `Retry-After` in seconds and
 * `retry-after-ms`, as OpenAI's SDKs read them), then records it as `chat.rejected`: the answer
 * does not wait for the stream, which is what is overloaded.
 */
export function answerShedHttp(deps: IngressDeps, reply: FastifyReply, shed: Shed, requestId: string, facts: RejectedFacts, traceparent: string) {
  const sent = sendError(reply, 'service_busy', shed.message, 503, shed.retryAfterMs);
  deps.overload.record(shedEvent(requestId, shed, facts, deps.now()), traceparent);
  return sent;
}

/**
 * The same at the NATS door, before anything else is read of the request: the error reply to the
 * caller's inbox, then the event, under the tenant its key is valid for (none when it is not: a
 * shed request is answered 503 whatever its key, and the key is only looked up, never refused).
 * A reply subject the door does not take (`replyOk` false, reply-subject.ts) gets no answer, and
 * the event does not carry it: the request is shed all the same.
 */
export function answerShedNats(nc: NatsConnection, deps: IngressDeps, msg: Msg, shed: Shed, replyOk: boolean): void {
  if (!msg.reply) return;
  const requestId = newRequestId();
  const receivedAt = deps.now();
  if (replyOk) sendReply(nc, msg.reply, { requestId, error: { code: 'service_busy', message: shed.message, status: 503, retryAfterMs: shed.retryAfterMs } });
  let tenant: string | undefined;
  try {
    const claimed = msg.subject.slice(msg.subject.lastIndexOf('.') + 1);
    tenant = authenticate(deps.tenants(), msg.headers?.get(Headers.tenantKey) || undefined, claimed, deps.keys(), receivedAt).tenant.id;
  } catch {
    tenant = undefined;
  }
  const traceparent = continueTrace(msg.headers?.get(Headers.traceparent) || undefined);
  deps.overload.record(shedEvent(requestId, shed, { tenant, receivedAt, ...(replyOk ? { replyTo: msg.reply } : {}) }, receivedAt), traceparent);
}
