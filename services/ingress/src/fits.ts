import type { ChatRequest } from '@sluice/contracts';
import { RequestRejected } from './rejection.js';

/** Kept free in each message for an event's envelope, the request context and the reply subject. */
const ENVELOPE_BYTES = 4096;

/**
 * The most bytes a request (as it travels in `ctx.request`) may take: half of the server's
 * `max_payload`, less an envelope. Every event carries the request once, and the largest message
 * a request causes is the invoker's stored answer (the request, plus the answer in
 * `chat.completed` and again as the client's result), so half is left for the answer: 4 MiB of
 * it with the shipped 8 MiB, far more than any model writes.
 */
export function requestRoom(maxPayload: number): number {
  return Math.floor(maxPayload / 2) - ENVELOPE_BYTES;
}

/**
 * Refuses a request whose events could not fit the NATS server's `max_payload`, at the door,
 * before anything is published. A request re-serialized grows at most threefold over its body
 * (an invalid UTF-8 byte is read as U+FFFD, three bytes) plus a few fields Sluice adds, so a body
 * within a third of the room is accepted without measuring; past that, the request is measured.
 *
 * @param bodyBytes the body's size when known (Content-Length, a NATS message), else undefined.
 * @throws RequestRejected body_too_large, naming the server's limit.
 * @example
 * checkFits(request, 2_000, 8 * 1024 * 1024); // fine
 */
export function checkFits(request: ChatRequest, bodyBytes: number | undefined, maxPayload: number): void {
  const room = requestRoom(maxPayload);
  if (bodyBytes !== undefined && bodyBytes * 3 + ENVELOPE_BYTES <= room) return;
  const bytes = Buffer.byteLength(JSON.stringify(request));
  if (bytes <= room) return;
  throw new RequestRejected(
    'body_too_large',
    `The request takes ${bytes} bytes as Sluice carries it, more than the ${room} bytes its message bus allows (NATS max_payload ${maxPayload}); send a shorter conversation.`,
    'messages',
  );
}
