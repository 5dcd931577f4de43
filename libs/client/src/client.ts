import { createInbox, headers as natsHeaders, errors, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import {
  Headers,
  Subjects,
  Topology,
  isAccepted,
  isChunk,
  isError,
  parseReply,
  type CacheKind,
  type ChatChunk,
  type ChatReply,
  type ChatResult,
  type Endpoint,
  type Priority,
} from '@sluice/contracts';
import { SluiceHeldError, SluiceRequestError } from './errors.js';

/**
 * A request body as the NATS front door takes it: OpenAI's body for the endpoint (chat
 * completions, Responses, embeddings), passed to the upstream whole, plus Sluice's hints. The
 * fields Sluice reads are typed; every other field of OpenAI's API is passed through as given.
 */
export interface ClientRequest {
  /** A configured model, or `auto` (the default for chat) to let the router choose. */
  model?: string;
  /** Chat completions: OpenAI's messages (text, parts, tool calls, tool results). */
  messages?: unknown[];
  /** Responses and embeddings: OpenAI's `input`. */
  input?: unknown;
  /** The end user, for per-user limits and costs. */
  user?: string;
  /** The product feature, for routing rules and costs (Sluice's; not sent upstream). */
  feature?: string;
  /** The lane (Sluice's; not sent upstream). */
  priority?: Priority;
  metadata?: Record<string, string>;
  [field: string]: unknown;
}

export interface SluiceClientOptions {
  tenant: string;
  /** The tenant's API key, sent in the `sluice-key` header. */
  key: string;
  /** How long to wait for the whole answer; default 60 000 ms. */
  timeoutMs?: number;
  /**
   * The `inboxPrefix` the connection was made with, where a gateway with NATS users lets the
   * tenant hear answers (docs/nats-security.md: `sluice.inbox.<tenant>`). `chat` and `submit`
   * take it from the connection; `stream` makes its inbox under it. Default: the connection's
   * own, read from nats.js (`_INBOX` when it has none).
   */
  inboxPrefix?: string;
}

export interface RequestOptions {
  /** Neither read nor write the cache for this request (the TTL and namespace below are then ignored). */
  skipCache?: boolean;
  /**
   * How long this answer may be served from the cache, in whole seconds (1 to 31 536 000), sent as
   * `sluice-cache-ttl`; the cache shortens it to the tenant's TTL. Other values are refused with `invalid_request`.
   */
  cacheTtlSeconds?: number;
  /**
   * A cache namespace inside the tenant (`sluice-cache-namespace`: 1 to 64 letters, digits, `_`, `.`, `-`):
   * answers are shared only between requests of the same namespace.
   */
  cacheNamespace?: string;
  /** The OpenAI API the body is for; default `chat.completions`. */
  endpoint?: Endpoint;
  /** `submit` only: the webhook (an `alerts.webhooks` id of the tenant) the answer is POSTed to, signed. */
  webhook?: string;
  /**
   * The request's idempotency key (`sluice-idempotency-key`: 1 to 255 printable ASCII characters,
   * e.g. a UUID): its answer is kept (a day by default), and sending the same request again with
   * the same key (after a timeout or a lost connection) answers with that answer, under the first
   * request's id, instead of running it again. The same key with another body is refused
   * (`idempotency_key_reused`, 422).
   */
  idempotencyKey?: string;
}

/**
 * A whole answer as the client returns it: the reply with `cache` always set, `miss` for an
 * answer an upstream made, else how the cache found it (`hit`, `semantic`, `coalesced`; `cached`
 * stays true for all three).
 */
export type SluiceResult = Omit<ChatResult, 'cache'> & { cache: CacheKind | 'miss' };

const encoder = new TextEncoder();

/**
 * The `inboxPrefix` a connection was made with: nats.js keeps its options on the connection but
 * does not declare them, so this reads them defensively (undefined: nats.js's `_INBOX`). A
 * `stream` then answers under the same prefix as `chat`, which a gateway with NATS users requires.
 */
function connectionInboxPrefix(nc: NatsConnection): string | undefined {
  const prefix = (nc as { options?: { inboxPrefix?: unknown } }).options?.inboxPrefix;
  return typeof prefix === 'string' && prefix !== '' ? prefix : undefined;
}

/**
 * The TypeScript client for Sluice's NATS front door (`sluice.chat.<tenant>`).
 *
 * @example
 * const nc = await connect({ servers: 'nats://127.0.0.1:4222' });
 * const sluice = new SluiceClient(nc, { tenant: 'acme', key: process.env.SLUICE_KEY! });
 * const result = await sluice.chat({ messages: [{ role: 'user', content: 'Hello' }] });
 * console.log(result.body); // the chat.completion, whole
 */
export class SluiceClient {
  private readonly subject: string;
  private readonly timeoutMs: number;
  private readonly inboxPrefix: string | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly opts: SluiceClientOptions,
  ) {
    this.subject = Subjects.chat(opts.tenant);
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.inboxPrefix = opts.inboxPrefix ?? connectionInboxPrefix(nc);
  }

  /**
   * The whole answer: `result.body` is the OpenAI object (`chat.completion`, `response`, the
   * embeddings `list`), `result.requestId` Sluice's id beside it, `result.cache` whether and how
   * the cache answered.
   *
   * @throws SluiceRequestError on an error reply, on timeout (`deadline_exceeded`) and when no
   * ingress listens (`service_busy`); SluiceHeldError when the gateway holds the request for later
   * (maintenance): `result(err.requestId, { waitMs })` gets its answer.
   */
  async chat(req: ClientRequest, opts: RequestOptions = {}): Promise<SluiceResult> {
    let msg;
    try {
      msg = await this.nc.request(this.subject, this.body(req, false), { headers: this.headers(opts), timeout: this.timeoutMs });
    } catch (e) {
      throw this.transportError(e);
    }
    return final(parse(msg.data));
  }

  /**
   * Sends a request to be answered later (`sluice-async: true`): resolves as soon as the gateway
   * has queued it, with its id and the subject its answer will be published on; `result(requestId,
   * { waitMs })` reads or waits for the answer (kept a day by default). The request runs in its
   * lane like any other; an async request cannot stream.
   *
   * @throws SluiceRequestError when the gateway refuses it (bad request, bad key, `stream: true`).
   * @example
   * const { requestId } = await sluice.submit({ messages });
   * const result = await sluice.result(requestId, { waitMs: 120_000 });
   */
  async submit(req: ClientRequest, opts: RequestOptions = {}): Promise<{ requestId: string; resultSubject: string }> {
    const headers = this.headers(opts);
    headers.set(Headers.async, 'true');
    let msg;
    try {
      msg = await this.nc.request(this.subject, this.body(req, false), { headers, timeout: this.timeoutMs });
    } catch (e) {
      throw this.transportError(e);
    }
    const reply = parse(msg.data);
    if (isError(reply)) throw SluiceRequestError.fromReply(reply);
    if (!isAccepted(reply)) throw new SluiceRequestError('internal_error', 'Sluice answered an async request at once instead of queueing it.', 500);
    return { requestId: reply.requestId, resultSubject: reply.resultSubject };
  }

  /**
   * The answer of a request the gateway answers later (sent with `submit`, or held in maintenance): read from the
   * SLUICE_RESULTS stream, or waited for on `sluice.results.<requestId>` up to `waitMs` (default
   * 0: only what is stored now). Works after a restart of the client: the answer is kept (a day
   * by default).
   *
   * @throws SluiceHeldError while it is still held or queued after `waitMs`; SluiceRequestError
   * `result_not_found` (404) when nothing is stored for it (unknown, answered directly, or
   * expired), or its own error when it was answered with one.
   * @example
   * try { return await sluice.chat(req); } catch (e) { if (e instanceof SluiceHeldError) return sluice.result(e.requestId, { waitMs: 600_000 }); throw e; }
   */
  async result(requestId: string, opts: { waitMs?: number } = {}): Promise<SluiceResult> {
    const subject = Subjects.result(requestId);
    // subscribe before reading, so an answer stored between the two is not missed
    const sub = this.nc.subscribe(subject);
    const timer = setTimeout(() => sub.unsubscribe(), Math.max(0, opts.waitMs ?? 0));
    try {
      let latest = await this.stored(subject);
      if ((latest === undefined || isAccepted(latest)) && (opts.waitMs ?? 0) > 0) {
        for await (const msg of sub) {
          latest = parse(msg.data);
          if (!isAccepted(latest) && !isChunk(latest)) break;
        }
      }
      if (latest === undefined) throw new SluiceRequestError('result_not_found', `No stored result for ${requestId}.`, 404, undefined, requestId);
      return final(latest);
    } finally {
      clearTimeout(timer);
      sub.unsubscribe();
    }
  }

  /** The latest message stored on a result subject (JetStream direct get, last by subject), or undefined. */
  private async stored(subject: string): Promise<ChatReply | undefined> {
    let msg;
    try {
      msg = await this.nc.request(`$JS.API.DIRECT.GET.${Topology.results.name}.${subject}`, undefined, { timeout: Math.min(this.timeoutMs, 5_000) });
    } catch (e) {
      // a 404 status ("no message") comes back as a no-responders-like error on some servers
      if (e instanceof errors.RequestError && e.isNoResponders()) return undefined;
      throw this.transportError(e);
    }
    if (msg.data.length === 0 || (msg.headers?.code ?? 0) >= 400) return undefined;
    if (msg.headers?.get(Headers.resultTenant) !== this.opts.tenant) return undefined;
    return parse(msg.data);
  }

  /**
   * The answer as it is generated: yields chunks, returns the final result.
   *
   * @throws SluiceRequestError as `chat` does; the timeout covers the whole answer.
   * @example
   * const it = sluice.stream({ messages });
   * for (let r = await it.next(); !r.done; r = await it.next()) console.log(r.value.chunk); // a chat.completion.chunk
   */
  async *stream(req: ClientRequest, opts: RequestOptions = {}): AsyncGenerator<ChatChunk, SluiceResult> {
    const inbox = createInbox(this.inboxPrefix);
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
        if (isChunk(reply)) {
          yield reply;
          continue;
        }
        return final(reply);
      }
      throw timedOut
        ? new SluiceRequestError('deadline_exceeded', `No complete answer within ${this.timeoutMs} ms.`, 504)
        : new SluiceRequestError('internal_error', 'The connection closed before the answer was complete.', 503);
    } finally {
      clearTimeout(timer);
      sub.unsubscribe();
    }
  }

  /**
   * Stops a request: the upstream call ends at once and the request ends as `chat.cancelled`,
   * billed for what was streamed. The id is on every chunk (`chunk.requestId`). Fire and forget.
   */
  cancel(requestId: string): void {
    this.nc.publish(Subjects.cancel(requestId));
  }

  private body(req: ClientRequest, stream: boolean): Uint8Array {
    // a whole answer leaves the body as given (an embeddings body has no `stream` to add)
    return encoder.encode(JSON.stringify(stream || req.stream !== undefined ? { ...req, stream } : req));
  }

  private headers(opts: RequestOptions): MsgHdrs {
    const h = natsHeaders();
    h.set(Headers.tenantKey, this.opts.key);
    if (opts.skipCache) h.set(Headers.cache, 'skip');
    // sent as given: ingress checks them, so a wrong value is refused there with the header's name
    if (opts.cacheTtlSeconds !== undefined) h.set(Headers.cacheTtl, String(opts.cacheTtlSeconds));
    if (opts.cacheNamespace !== undefined) h.set(Headers.cacheNamespace, opts.cacheNamespace);
    if (opts.endpoint) h.set(Headers.endpoint, opts.endpoint);
    if (opts.webhook !== undefined) h.set(Headers.webhook, opts.webhook);
    if (opts.idempotencyKey !== undefined) h.set(Headers.idempotencyKey, opts.idempotencyKey);
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

/** A final reply as the client returns it: the result, or thrown as an error (held: SluiceHeldError). */
function final(reply: ChatReply): SluiceResult {
  if (isError(reply)) throw SluiceRequestError.fromReply(reply);
  if (isAccepted(reply)) throw new SluiceHeldError(reply.requestId, reply.resultSubject, reply.status);
  if (isChunk(reply))
    throw new SluiceRequestError('internal_error', 'Sluice sent a chunk to a request that did not ask for a stream.', 500, undefined, reply.requestId);
  return withCache(reply);
}

/** `cache` filled in: `cached` without a kind is an exact hit (a gateway from before the kinds); neither is a miss. */
function withCache(result: ChatResult): SluiceResult {
  return { ...result, cache: result.cache ?? (result.cached ? 'hit' : 'miss') };
}

function parse(data: Uint8Array): ChatReply {
  try {
    return parseReply(data);
  } catch (e) {
    throw new SluiceRequestError('internal_error', `Sluice sent a reply this client cannot read (${(e as Error).message}).`, 502);
  }
}
