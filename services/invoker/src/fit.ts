import type { RequestContext } from '@sluice/contracts';

/** Kept free for the envelopes, the usage and the reply subject around the answer. */
const ENVELOPE_BYTES = 16 * 1024;
/** The most bytes one UTF-16 unit takes in JSON (a control character or lone surrogate: `\uXXXX`). */
const MAX_JSON_BYTES_PER_UNIT = 6;

/** An answer's content, cut if it had to be, and its length before. */
export interface FittedContent {
  content: string;
  truncatedFrom?: number;
}

/**
 * Makes an upstream's answer fit the messages that carry it, so a request the upstream served is
 * always billed. The largest of them is the stored answer (`sluice_results`): the request context,
 * then the answer twice (in `chat.completed` and in the client's result). Ingress admits requests
 * of at most half of `max_payload`, which leaves a quarter of it for each copy of the answer: 2 MiB
 * with the shipped 8 MiB, far beyond what a model writes. An answer over that is cut (at a
 * character boundary) rather than lost with its usage; the caller reports it as finish reason
 * `length` and says so on the timeline. Pure.
 *
 * @example
 * fitContent('hi', ctx, 8 * 1024 * 1024) // { content: 'hi' }
 */
export function fitContent(content: string, ctx: RequestContext, maxPayload: number): FittedContent {
  // cheap bound first: a request is at most half of max_payload (ingress's check)
  if (2 * content.length * MAX_JSON_BYTES_PER_UNIT + ENVELOPE_BYTES <= maxPayload / 2) return { content };
  const room = Math.floor((maxPayload - Buffer.byteLength(JSON.stringify(ctx)) - ENVELOPE_BYTES) / 2);
  if (Buffer.byteLength(JSON.stringify(content)) <= room) return { content };
  let end = Math.max(0, Math.floor(room / MAX_JSON_BYTES_PER_UNIT));
  // never split a surrogate pair
  const code = content.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end--;
  return { content: content.slice(0, end), truncatedFrom: content.length };
}
