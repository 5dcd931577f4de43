import { createInbox, headers as natsHeaders, errors, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { Headers, Subjects, isChunk, isError, parseReply, type ChatChunk, type ChatReply, type ChatResult, type Priority } from '@sluice/contracts';
import { SluiceRequestError } from './errors.js';

/** A chat request as the NATS front door takes it (OpenAI's field names, plus Sluice's). */
export interface ClientChatRequest {
  messages: Array<{ role: 'system' | 'user' | 'assistant' | 'developer' | 'tool'; content: string; name?: string }>;
  /** A configured model, or `auto` (the default) to let the router choose. */
  model?: string;
  /** The end user, for per-user limits and costs. */
  user?: string;
  /** The product feature, for routing rules and costs. */
  feature?: string;
  priority?: Priority;
  metadata?: Record<string, string>;
  temperature?: number;
  top_p?: number;
  max_tokens?: number;
  stop?: string | string[];
  presence_penalty?: number;
  frequency_penalty?: number;
  seed?: number;
}

export interface SluiceClientOptions {
  tenant: string;
  /** The tenant's API key, sent in the `sluice-key` header. */
  key: string;
  /** How long to wait for the whole answer; default 60 000 ms. */
  timeoutMs?: number;
}

export interface RequestOptions {
  /** Neither read nor write the cache for this request. */
  skipCache?: boolean;
}

const encoder = new TextEncoder();

/**
 * The TypeScript client for Sluice's NATS front door (`sluice.chat.<tenant>`).
 *
 * @example
 * const nc = await connect({ servers: 'nats://127.0.0.1:4222' });
 * const sluice = new SluiceClient(nc, { tenant: 'acme', key: process.env.SLUICE_KEY! });
 * const result = await sluice.chat({ messages: [{ role: 'user', content: 'Hello' }] });
 * console.log(result.message.content);
 */
export class SluiceClient {
  private readonly subject: string;
  private readonly timeoutMs: number;

  constructor(
    private readonly nc: NatsConnection,
    private readonly opts: SluiceClientOptions,
  ) {
    this.subject = Subjects.chat(opts.tenant);
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  /**
   * The whole answer.
   *
   * @throws SluiceRequestError on an error reply, on timeout (`deadline_exceeded`) and when no
   * ingress listens (`service_busy`).
   */
  async chat(req: ClientChatRequest, opts: RequestOptions = {}): Promise<ChatResult> {
    let msg;
    try {
      msg = await this.nc.request(this.subject, this.body(req, false), { headers: this.headers(opts), timeout: this.timeoutMs });
    } catch (e) {
      throw this.transportError(e);
    }
    const reply = parse(msg.data);
    if (isError(reply)) throw SluiceRequestError.fromReply(reply);
    if (isChunk(reply))
      throw new SluiceRequestError('internal_error', 'Sluice sent a chunk to a request that did not ask for a stream.', 500, undefined, reply.requestId);
    return reply;
  }

  /**
   * The answer as it is generated: yields chunks, returns the final result.
   *
   * @throws SluiceRequestError as `chat` does; the timeout covers the whole answer.
   * @example
   * const it = sluice.stream({ messages });
   * for (let r = await it.next(); !r.done; r = await it.next()) process.stdout.write(r.value.chunk.content);
   */
  async *stream(req: ClientChatRequest, opts: RequestOptions = {}): AsyncGenerator<ChatChunk, ChatResult> {
    const inbox = createInbox();
    // subscribe before publishing, so not even the first chunk can be missed
    const sub = this.nc.subscribe(inbox);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      sub.unsubscribe();
    }, this.timeoutMs);
    try {
      this.nc.publish(this.subject, this.body(req, true), { reply: inbox, headers: this.headers(opts) });
      for await (const msg of sub) {
        const reply = parse(msg.data);
        if (isError(reply)) throw SluiceRequestError.fromReply(reply);
        if (isChunk(reply)) {
          yield reply;
          continue;
        }
        return reply;
      }
      throw timedOut
        ? new SluiceRequestError('deadline_exceeded', `No complete answer within ${this.timeoutMs} ms.`, 504)
        : new SluiceRequestError('internal_error', 'The connection closed before the answer was complete.', 503);
    } finally {
      clearTimeout(timer);
      sub.unsubscribe();
    }
  }

  private body(req: ClientChatRequest, stream: boolean): Uint8Array {
    return encoder.encode(JSON.stringify({ ...req, stream }));
  }

  private headers(opts: RequestOptions): MsgHdrs {
    const h = natsHeaders();
    h.set(Headers.tenantKey, this.opts.key);
    if (opts.skipCache) h.set(Headers.cache, 'skip');
    return h;
  }

  private transportError(e: unknown): SluiceRequestError {
    if (e instanceof errors.TimeoutError) return new SluiceRequestError('deadline_exceeded', `No answer within ${this.timeoutMs} ms.`, 504);
    if (e instanceof errors.RequestError && e.isNoResponders()) {
      return new SluiceRequestError('service_busy', `No Sluice ingress listens on ${this.subject}; is the gateway running?`, 503);
    }
    const message = e instanceof Error ? e.message : String(e);
    return new SluiceRequestError('internal_error', `The request could not be sent: ${message}`, 503);
  }
}

function parse(data: Uint8Array): ChatReply {
  try {
    return parseReply(data);
  } catch (e) {
    throw new SluiceRequestError('internal_error', `Sluice sent a reply this client cannot read (${(e as Error).message}).`, 502);
  }
}
