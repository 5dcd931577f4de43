import { isJsonObject, parseEvent, type AnyEvent } from '@sluice/contracts';

/**
 * Prompt and answer text on the ledger (issue 11). The ledger never stores it: a timeline row
 * keeps the decisions (model, usage, reasons), not the conversation, which stays in the event
 * stream under its retention. For a tenant with `ledger.storeContent: true` the timeline reads
 * the text back from the stream when it is served; for every other tenant it is withheld.
 *
 * The text is in four places: `chat.requested`'s body (the client's request, prompt included),
 * and the answer body of `cache.hit`, `cache.coalesced` and `chat.completed`. Streamed chunks are
 * never events.
 */
export const CONTENT_EVENTS: ReadonlySet<string> = new Set(['chat.requested', 'cache.hit', 'cache.coalesced', 'chat.completed']);

/**
 * An event's timeline data without the conversation: no `body`, and an `answer` with its model
 * and usage but not its body. Other data is returned as it is. Pure.
 *
 * @example
 * withoutContent('chat.completed', { answer: { model: 'm', body: {...}, usage } }) // { answer: { model: 'm', usage } }
 */
export function withoutContent(type: string, data: unknown): unknown {
  if (!CONTENT_EVENTS.has(type) || !isJsonObject(data)) return data;
  const { body: _body, ...rest } = data;
  if (!isJsonObject(rest.answer)) return rest;
  const { body: _answerBody, ...answer } = rest.answer;
  return { ...rest, answer };
}

/** The conversation an event carried, to put back on its timeline row; undefined for other events. */
export function contentOf(e: AnyEvent): { body?: unknown; answerBody?: unknown } | undefined {
  switch (e.type) {
    case 'chat.requested':
      return { body: e.data.body };
    case 'cache.hit':
    case 'cache.coalesced':
    case 'chat.completed':
      return { answerBody: e.data.answer.body };
    default:
      return undefined;
  }
}

/** Puts an event's conversation back on its (content-free) timeline data. */
export function withContent(data: unknown, content: { body?: unknown; answerBody?: unknown }): unknown {
  if (!isJsonObject(data)) return data;
  if (content.body !== undefined) return { ...data, body: content.body };
  if (content.answerBody !== undefined && isJsonObject(data.answer)) return { ...data, answer: { ...data.answer, body: content.answerBody } };
  return data;
}

/** Reads one event back from the stream by sequence; undefined when the stream no longer has it. */
export type EventReader = (seq: number) => Promise<Uint8Array | undefined>;

/** Parses a stored event, undefined when it is not one (a trimmed or replaced sequence). */
export function parseStored(bytes: Uint8Array | undefined): AnyEvent | undefined {
  if (!bytes) return undefined;
  try {
    return parseEvent(bytes);
  } catch {
    return undefined;
  }
}
