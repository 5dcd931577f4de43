import { countText } from './count.js';
import { countOffThread } from './pool.js';

/**
 * At most this many chars of a request's messages are counted on the caller's thread; more go
 * to the worker (pool.ts). Counting costs ~0.05 µs a char for ordinary text and at most ~0.5 µs
 * for hostile text (docs/input-bounds.md): inline counting holds an event loop under ~1 ms for
 * ordinary text and under ~8 ms at worst, while a trip to the worker costs ~0.1 ms.
 */
export const INLINE_MAX_CHARS = 16_384;

/** What is counted of a chat message. */
export interface TextMessage {
  content: string;
  name?: string | undefined;
}

/** Tokens of a message's content and of its name (0 without one). */
export interface MessageTokens {
  content: number;
  name: number;
}

// counts of a messages array already counted, by identity: the router counts a request's
// messages off-thread before its pure route() counts them again synchronously, and must get
// them for free. Weak, so an entry lives exactly as long as the request.
const counted = new WeakMap<readonly TextMessage[], MessageTokens[]>();

/**
 * Tokens of each message, on this thread (at once when `countMessagesAsync` already counted
 * this array). Linear in the text's length; a long text can still take a while: callers on an
 * event loop use `countMessagesAsync`.
 *
 * @example
 * countMessages([{ role: 'user', content: 'hello world' }]) // [{ content: 2, name: 0 }]
 */
export function countMessages(messages: readonly TextMessage[]): MessageTokens[] {
  const known = counted.get(messages);
  if (known) return known;
  return messages.map((m) => ({ content: countText(m.content), name: m.name ? countText(m.name) : 0 }));
}

/**
 * Tokens of each message, off the event loop when the messages hold more than
 * INLINE_MAX_CHARS chars. Remembered for `countMessages` on the same array.
 *
 * @example
 * const counts = await countMessagesAsync(request.messages);
 */
export async function countMessagesAsync(messages: readonly TextMessage[]): Promise<MessageTokens[]> {
  const known = counted.get(messages);
  if (known) return known;
  let chars = 0;
  for (const m of messages) chars += m.content.length + (m.name?.length ?? 0);
  let result: MessageTokens[];
  if (chars <= INLINE_MAX_CHARS) {
    result = countMessages(messages);
  } else {
    const texts = messages.flatMap((m) => [m.content, m.name ?? '']);
    // a worker that cannot start or died mid-count: count here, as before there was one,
    // rather than fail the request
    const counts = await countOffThread(texts).catch(() => texts.map(countText));
    result = messages.map((_, i) => ({ content: counts[2 * i]!, name: counts[2 * i + 1]! }));
  }
  counted.set(messages, result);
  return result;
}
