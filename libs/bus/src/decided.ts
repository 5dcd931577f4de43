import type { AnyEvent, ChatReply, ConsumerSpec, EmittedBy, ReceivedBy } from '@sluice/contracts';
import type { Bus } from './connect.js';
import { publishEvent, type PublishOptions } from './publish.js';
import { answer, type ResultMark } from './reply.js';

/** An answer for a client's reply inbox (core NATS); `to` unset: nobody to answer. */
export interface Reply {
  to: string | undefined;
  reply: ChatReply;
  /** The request's tenant: set on a stored result (`sluice.results.<id>`), the one tenant that may fetch it. */
  tenant?: string;
}

/**
 * What a handler decided for one event: the events to publish, then the replies to send. The
 * bus publishes the events (awaiting the stream's acks, with msg ids and trace context), then
 * sends the replies, then acks the input; a handler never publishes or acks by itself.
 */
export interface Decided<E extends AnyEvent = AnyEvent> {
  events: E[];
  replies: Reply[];
  /**
   * Have the input redelivered after this many ms instead of acking it, once the events are
   * published: a retry on the handler's own schedule (a webhook that did not answer 2xx yet).
   * Not a failure, so it never counts toward parking the event.
   */
  redeliverInMs?: number;
}

/** The event a consumer's handler is given: only the types its spec receives. */
export type Received<C extends ConsumerSpec> = Extract<AnyEvent, { type: ReceivedBy<C> }>;
/** The events a consumer's handler may decide. */
export type Emitted<C extends ConsumerSpec> = Extract<AnyEvent, { type: EmittedBy<C> }>;

/** Nothing to publish or answer (a consumer that only updates state). */
export const NOTHING: Decided<never> = Object.freeze({ events: [], replies: [] });

/**
 * Shorthand for a decision: events (each a type the consumer emits) and replies.
 *
 * @example
 * return decided([makeEvent('chat.routed', fields, data)]);
 * return decided([shed], [{ to: ctx.replyTo, reply: { requestId, error } }]);
 */
export function decided<E extends AnyEvent>(events: E[], replies: Reply[] = []): Decided<E> {
  return { events, replies };
}

/**
 * Carries a decision out: publishes its events (in order on one connection, so the stream keeps
 * their order) and awaits every ack, then sends the replies and awaits the stream's ack of those
 * stored (`answer`: a stored result is marked with the input's tenant, unless the reply names its
 * own, and its request's webhook). A reply for a request whose terminal event came back a
 * duplicate of another stage's (`Published.endedAs`) is not sent: the request ended there.
 * `consumeEvents` does this for each handler before acking its input; tests that call a handler
 * directly do it with this too.
 *
 * @example
 * await carryOut(bus, await handler(event, delivery), traceOf(delivery));
 */
export async function carryOut(bus: Bus, decision: Decided, trace: PublishOptions = {}, mark: ResultMark = {}): Promise<void> {
  const acks = await Promise.all(decision.events.map((e) => publishEvent(bus.js, e, trace)));
  // a request another stage already ended (contracts msgIdOf) keeps the answer it had
  const ended = new Set(decision.events.filter((_e, i) => acks[i]!.endedAs !== undefined).map((e) => e.requestId));
  const replies = ended.size === 0 ? decision.replies : decision.replies.filter((r) => r.reply.requestId === undefined || !ended.has(r.reply.requestId));
  await Promise.all(replies.map((r) => answer(bus, r.to, r.reply, { ...mark, tenant: r.tenant ?? mark.tenant })));
}
