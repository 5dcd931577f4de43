import { Errors, makeEvent, type AnyEvent, type ChatErrorReply, type SluiceEvent, type ServiceName } from '@sluice/contracts';

/** The terminal event and the client's answer for a request nobody waits for any more. */
export interface Expired {
  event: SluiceEvent<'chat.failed'>;
  replyTo?: string;
  reply: ChatErrorReply;
}

/**
 * Decides whether an event on the request path arrives after its request's deadline, and if so
 * how the request ends: `chat.failed` with `deadline_exceeded`. A stage that went on would only
 * spend work (and upstream tokens) on an answer nobody reads; a redelivered message past its
 * deadline ends here instead of coming back. Its id is the request's one `chat.failed` id, so a
 * stage that fails it twice (a redelivery) publishes it once. Pure.
 *
 * @example
 * const expired = pastDeadline(routed, 'router', Date.now()); // undefined while there is time
 */
export function pastDeadline(e: AnyEvent, service: ServiceName, now: number): Expired | undefined {
  if (!('ctx' in e.data)) return undefined;
  const ctx = e.data.ctx;
  if (now < ctx.deadline) return undefined;
  const late = now - ctx.deadline;
  const event = makeEvent(
    'chat.failed',
    { requestId: e.requestId, tenant: e.tenant, service, at: now, reason: `${e.type} reached ${service} ${late} ms after the request's deadline` },
    {
      code: 'deadline_exceeded',
      status: Errors.deadline_exceeded.status,
      message: Errors.deadline_exceeded.message,
      attempts: 0,
      ...(ctx.replyTo ? { replyTo: ctx.replyTo } : {}),
      receivedAt: ctx.receivedAt,
    },
  );
  const reply: ChatErrorReply = {
    requestId: e.requestId,
    error: { code: 'deadline_exceeded', message: Errors.deadline_exceeded.message, status: Errors.deadline_exceeded.status },
  };
  return { event, reply, ...(ctx.replyTo ? { replyTo: ctx.replyTo } : {}) };
}
