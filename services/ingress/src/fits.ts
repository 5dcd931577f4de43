import type { Endpoint, SluiceEvent } from '@sluice/contracts';
import { RequestRejected } from './rejection.js';

/** Kept free in a message for its headers: Nats-Msg-Id, the trace context, a dead letter's Sluice-Parked-*. */
const HEADER_BYTES = 4096;
/** The envelope and the request's context (facts, reply subject) beside the body, generously. */
const CONTEXT_BYTES = 4096;

/**
 * The most bytes `chat.requested` may take: the server's `max_payload` less its headers. The body
 * is written to the stream only there (later events carry the request's facts and a reference to
 * it), and the answer travels in messages of its own, so the request may use nearly all of it.
 */
export function requestRoom(maxPayload: number): number {
  return maxPayload - HEADER_BYTES;
}

/**
 * Refuses a request whose `chat.requested` could not fit the NATS server's `max_payload`, at the
 * door, before anything is published. The body re-serialized grows at most threefold over the
 * bytes received (an invalid UTF-8 byte is read as U+FFFD, three bytes; a control character
 * arrives escaped already), so a body within a third of the room is accepted without measuring;
 * past that, the event is measured as it will be published.
 *
 * @param bodyBytes the body's size when known (Content-Length, a NATS message), else undefined.
 * @throws RequestRejected body_too_large, naming the server's limit and the body's field (`messages` or `input`).
 * @example
 * checkFits(requestedEvent(id, tenant, ctx, body), 2_000, 8 * 1024 * 1024); // fine
 */
export function checkFits(event: SluiceEvent<'chat.requested'>, bodyBytes: number | undefined, maxPayload: number): void {
  const room = requestRoom(maxPayload);
  if (bodyBytes !== undefined && bodyBytes * 3 + CONTEXT_BYTES <= room) return;
  const bytes = Buffer.byteLength(JSON.stringify(event));
  if (bytes <= room) return;
  throw new RequestRejected(
    'body_too_large',
    `The request takes ${bytes} bytes as Sluice carries it, more than the ${room} bytes its message bus allows (NATS max_payload ${maxPayload}); send a shorter ${event.data.ctx.request.endpoint === 'chat.completions' ? 'conversation' : 'input'}.`,
    bodyField(event.data.ctx.request.endpoint),
  );
}

function bodyField(endpoint: Endpoint): string {
  return endpoint === 'chat.completions' ? 'messages' : 'input';
}
