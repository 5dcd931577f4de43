import { ChatAssembler, completionId, isJsonObject, usageOf, type Endpoint, type Usage } from '@sluice/contracts';
import type { Streamed } from './cancels.js';

type Json = Record<string, unknown>;

/** The upstream broke its protocol (no usage, an error event inside a stream); classified as a protocol failure. */
class UpstreamProtocolError extends Error {}

/**
 * A whole answer as the client gets it: the upstream's object unchanged, except a chat
 * completion's `id`, which becomes `chatcmpl-<requestId>` (the id a cached replay has too).
 * Throws when the upstream sent no usage: Sluice does not bill a guess.
 */
export function wholeAnswer(endpoint: Endpoint, requestId: string, data: unknown): { body: unknown; usage: Usage } {
  const usage = usageOf(endpoint, data);
  if (usage === undefined) throw new UpstreamProtocolError('upstream answered without usage');
  const body = endpoint === 'chat.completions' && isJsonObject(data) ? { ...data, id: completionId(requestId) } : data;
  return { body, usage };
}

/** Reads one streamed answer: what of each upstream item goes to the client, and the answer they add up to. */
export interface StreamReader {
  /** The object to forward for this upstream item (undefined: forward nothing). Throws on an error event. */
  take(item: unknown): unknown;
  /** The whole answer once the stream ended. Throws when it ended without its usage or its final event. */
  finish(created: number): { body: unknown; usage: Usage };
  /** What the client has received so far (for a cancel). */
  streamed(): Streamed;
}

/** The reader of a streamed answer of this endpoint (chat completions or Responses). */
export function streamReader(endpoint: Endpoint, requestId: string, addedUsage: boolean): StreamReader {
  return endpoint === 'responses' ? new ResponsesReader() : new ChatReader(requestId, addedUsage);
}

/**
 * `chat.completion.chunk`s, forwarded as the upstream sent them with the id rewritten, added up
 * with `ChatAssembler`. When Sluice asked for the usage chunk (the client did not), the usage
 * chunk and the `usage: null` field of the others are kept from the client, as OpenAI would.
 */
class ChatReader implements StreamReader {
  private readonly assembler = new ChatAssembler();
  private created: number | undefined;

  constructor(
    private readonly requestId: string,
    private readonly addedUsage: boolean,
  ) {}

  take(item: unknown): unknown {
    this.assembler.add(item);
    if (!isJsonObject(item)) return item;
    if (typeof item.created === 'number') this.created ??= item.created;
    const chunk: Json = { ...item, id: completionId(this.requestId) };
    if (this.addedUsage) {
      if (Array.isArray(item.choices) && item.choices.length === 0 && isJsonObject(item.usage)) return undefined;
      delete chunk.usage;
    }
    return chunk;
  }

  finish(created: number): { body: unknown; usage: Usage } {
    const usage = usageOf('chat.completions', { usage: this.assembler.usage });
    if (usage === undefined) throw new UpstreamProtocolError('upstream stream ended without a usage chunk (does it support stream_options.include_usage?)');
    return { body: this.assembler.completion(this.requestId, this.created ?? created), usage };
  }

  streamed(): Streamed {
    const usage = usageOf('chat.completions', { usage: this.assembler.usage });
    return { text: this.assembler.text, ...(usage !== undefined ? { usage } : {}) };
  }
}

/** Text-carrying Responses events, added up for a cancel's token count. */
const RESPONSE_TEXT_DELTAS = new Set(['response.output_text.delta', 'response.refusal.delta', 'response.function_call_arguments.delta']);

/**
 * Responses API events, forwarded as they are; the answer is the `response` of the final event
 * (`response.completed`, or `response.incomplete` when the upstream stopped at its cap).
 */
class ResponsesReader implements StreamReader {
  private final: unknown;
  private text = '';

  take(item: unknown): unknown {
    if (!isJsonObject(item)) return item;
    const type = item.type;
    if (typeof type === 'string' && RESPONSE_TEXT_DELTAS.has(type) && typeof item.delta === 'string') this.text += item.delta;
    if (type === 'response.completed' || type === 'response.incomplete') this.final = item.response;
    if (type === 'error' || type === 'response.failed') throw new UpstreamProtocolError(`upstream stream failed: ${errorText(item)}`);
    return item;
  }

  finish(): { body: unknown; usage: Usage } {
    if (this.final === undefined) throw new UpstreamProtocolError('upstream stream ended without response.completed');
    const usage = usageOf('responses', this.final);
    if (usage === undefined) throw new UpstreamProtocolError('upstream response.completed carried no usage');
    return { body: this.final, usage };
  }

  streamed(): Streamed {
    const usage = this.final !== undefined ? usageOf('responses', this.final) : undefined;
    return { text: this.text, ...(usage !== undefined ? { usage } : {}) };
  }
}

function errorText(event: Json): string {
  const response = isJsonObject(event.response) ? event.response : undefined;
  const error = isJsonObject(response?.error) ? response.error : event;
  return typeof error.message === 'string' ? error.message : String(event.type);
}
