import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { BucketState, RequestContext } from './request.js';

/**
 * Tokens billed for an answer, in the chat completions' names whatever the endpoint: the
 * Responses API's input/output tokens map to prompt/completion, an embedding has no completion.
 * The upstream's own usage, with its detail objects, stays in the answer's body.
 */
export const Usage = Type.Object({
  prompt_tokens: Type.Integer({ minimum: 0 }),
  completion_tokens: Type.Integer({ minimum: 0 }),
  total_tokens: Type.Integer({ minimum: 0 }),
});
export type Usage = Static<typeof Usage>;

/**
 * What a client receives on its reply inbox: the public contract of the NATS door. Exactly one
 * final message (a result or an error) ends every request; with `stream: true` chunk messages
 * come before it. Each shape is a runtime schema (`parseReply` checks a message against them).
 */
const RateLimit = RequestContext.properties.rateLimit;

/**
 * How a cached answer was found: `hit` under the request's exact key, `semantic` under a similar
 * earlier question (docs/caching.md), `coalesced` from an identical request in flight at the same time.
 */
export const CacheKind = Type.Union([Type.Literal('hit'), Type.Literal('semantic'), Type.Literal('coalesced')]);
export type CacheKind = Static<typeof CacheKind>;

export const ChatResult = Type.Object({
  requestId: Type.String(),
  /** Sluice's name of the model that answered (the upstream's own is in `body.model`). */
  model: Type.String(),
  /**
   * The OpenAI object as the upstream answered it, whole: `chat.completion` (its `id` is
   * `chatcmpl-<requestId>`), `response`, or the embeddings `list`.
   */
  body: Type.Unknown(),
  usage: Usage,
  /** True when the answer came from the cache, whatever the kind (`cache`). */
  cached: Type.Boolean(),
  /** Which cache answered; absent for an upstream's answer. Ingress sends it as `x-sluice-cache` (absent: `miss`). */
  cache: Type.Optional(CacheKind),
  /** Unix seconds. */
  created: Type.Integer(),
  rateLimit: RateLimit,
  /** ms the request waited in its priority lane for an upstream slot; ingress sends it as `x-sluice-queue-ms`. */
  queueMs: Type.Optional(Type.Number({ minimum: 0 })),
});
export type ChatResult = Static<typeof ChatResult>;

export const ChatChunk = Type.Object({
  requestId: Type.String(),
  model: Type.String(),
  /**
   * One streamed object as the upstream sent it: a `chat.completion.chunk` (its `id` is
   * `chatcmpl-<requestId>`), or a Responses API event (its `type` is the SSE event name).
   */
  chunk: Type.Unknown(),
  /**
   * True on chunks of an answer served from the cache. HTTP ingress sends its `x-sluice-cache`
   * header with the first chunk, before the final result says whether the answer was cached.
   */
  cached: Type.Optional(Type.Boolean()),
  /** Which cache answered (`ChatResult.cache`), on chunks of a cached answer. */
  cache: Type.Optional(CacheKind),
  /** On the first chunk: the limits ingress sends as headers with it. */
  rateLimit: RateLimit,
  /** On the first chunk: ms waited in the lane (`ChatResult.queueMs`), sent as a header with it. */
  queueMs: Type.Optional(Type.Number({ minimum: 0 })),
});
export type ChatChunk = Static<typeof ChatChunk>;

export const ChatErrorReply = Type.Object({
  requestId: Type.Optional(Type.String()),
  error: Type.Object({
    /** A code of the error catalogue (`Errors`). */
    code: Type.String(),
    message: Type.String(),
    /** The HTTP status the code carries. */
    status: Type.Integer(),
    retryAfterMs: Type.Optional(Type.Integer({ minimum: 0 })),
    /** OpenAI's error `type` and `param`, when they are not the catalogue's (an upstream's own error). */
    type: Type.Optional(Type.String()),
    param: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  }),
  /**
   * On a throttle: the bucket that refused the request (its kind only; the limiter stopped at
   * it), which ingress sends as that kind's x-ratelimit-* headers with the 429.
   */
  rateLimit: Type.Optional(Type.Object({ requests: Type.Optional(BucketState), tokens: Type.Optional(BucketState) })),
});
export type ChatErrorReply = Static<typeof ChatErrorReply>;

/**
 * Not the answer yet: the request is kept and will be answered on `resultSubject`
 * (`sluice.results.<requestId>`, stored in SLUICE_RESULTS). `queued`: the client asked for an
 * async answer (`x-sluice-async: true`); `held`: the gateway is in maintenance (degrade level 4)
 * and answers it, in order, once it serves from the model again. HTTP ingress turns it into a
 * 202. It is a final message on a client's inbox; on the result subject the answer replaces it.
 */
export const ChatAccepted = Type.Object({
  requestId: Type.String(),
  status: Type.Union([Type.Literal('queued'), Type.Literal('held')]),
  resultSubject: Type.String(),
  /** Epoch ms it was accepted for later. */
  at: Type.Number(),
});
export type ChatAccepted = Static<typeof ChatAccepted>;

export const ChatReply = Type.Union([ChatResult, ChatChunk, ChatErrorReply, ChatAccepted]);
export type ChatReply = ChatResult | ChatChunk | ChatErrorReply | ChatAccepted;

const replyCheck = TypeCompiler.Compile(ChatReply);

/**
 * Parses a message from a reply inbox and checks it against the reply schemas.
 *
 * @throws Error naming the first problem, for JSON that is not a reply.
 * @example
 * const reply = parseReply(msg.data); if (isError(reply)) throw ...
 */
export function parseReply(bytes: Uint8Array | string): ChatReply {
  const value: unknown = JSON.parse(typeof bytes === 'string' ? bytes : new TextDecoder().decode(bytes));
  const problem = replyProblem(value);
  if (problem !== undefined) throw new Error(`not a Sluice reply: ${problem}`);
  return value as ChatReply;
}

/** The first way `value` is not a reply, or undefined when it is one. */
export function replyProblem(value: unknown): string | undefined {
  if (replyCheck.Check(value)) return undefined;
  const e = replyCheck.Errors(value).First();
  return `${e?.path ?? ''} ${e?.message ?? 'invalid'}`;
}

export function isChunk(reply: ChatReply): reply is ChatChunk {
  return 'chunk' in reply;
}
export function isError(reply: ChatReply): reply is ChatErrorReply {
  return 'error' in reply;
}
export function isAccepted(reply: ChatReply): reply is ChatAccepted {
  return 'status' in reply && 'resultSubject' in reply;
}
