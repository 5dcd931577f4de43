import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  chatChunksOf,
  Errors,
  replayChunks,
  isAccepted,
  isChunk,
  isError,
  type CacheKind,
  type ChatAccepted,
  type ChatReply,
  type ChatErrorReply,
  type Endpoint,
  type RateLimitState,
} from '@sluice/contracts';
import type { PendingReplies } from './inbox.js';
import { chatChunkForClient, errorEvent, isUsageChunk, openAiErrorBody, rateLimitHeaders, retryHeaders, sseEvent, streamEnd } from './openai-wire.js';

const DEADLINE: ChatErrorReply['error'] = { code: 'deadline_exceeded', message: Errors.deadline_exceeded.message, status: Errors.deadline_exceeded.status };

const STOPPING = 'This gateway instance is stopping; retry and another will answer.';

/** Closed with no answer: either the client went away or the service is stopping. */
function clientGone(reply: FastifyReply): boolean {
  const socket = reply.raw.socket;
  return reply.raw.destroyed || !socket || socket.destroyed;
}

/**
 * `x-sluice-queue-ms`: how long the request waited in its priority lane for an upstream slot
 * (the invoker's measure); absent on answers no upstream call made (cache hits, static answers).
 */
function queueHeader(queueMs: number | undefined): Record<string, string> {
  return queueMs !== undefined ? { 'x-sluice-queue-ms': String(queueMs) } : {};
}

/**
 * `x-sluice-cache`: how the answer was found (`hit`, `semantic`, `coalesced`), from the reply's
 * `cache`; `cached` without it is an exact hit (a stage from before the kinds); neither is a `miss`.
 */
function cacheHeader(r: { cache?: CacheKind; cached?: boolean }): CacheKind | 'miss' {
  return r.cache ?? (r.cached === true ? 'hit' : 'miss');
}

/** What a streamed answer needs to know of its request. */
export interface StreamShape {
  endpoint: Endpoint;
  requestId: string;
  /** Chat's `stream_options.include_usage`: keep the usage chunk (and `usage: null` on the others). */
  includeUsage: boolean;
}

/**
 * An OpenAI-shaped error response (status, Retry-After when known). `type` and `param` are an
 * upstream's own when it refused the request; else the catalogue's type and the field at fault.
 */
export function sendError(reply: FastifyReply, code: string, message: string, status: number, retryAfterMs?: number, param?: string | null, type?: string) {
  return reply
    .code(status)
    .headers(retryHeaders(retryAfterMs))
    .header('content-type', 'application/json; charset=utf-8')
    .send(openAiErrorBody(code, message, type, param ?? null));
}

function sendErrorReply(reply: FastifyReply, error: ChatErrorReply['error'], rateLimit?: ChatErrorReply['rateLimit']) {
  reply.headers(rateLimitHeaders(rateLimit));
  return sendError(reply, error.code, error.message, error.status, error.retryAfterMs, error.param, error.type);
}

/** Where an HTTP client fetches the answer of a request answered later. */
function resultUrl(requestId: string): string {
  return `/v1/sluice/requests/${requestId}/result`;
}

/**
 * 202 for a request kept for later (held at degrade level 4): its id, status, and where its answer
 * will be (`Location`, `result_url`; NATS: `result_subject`). The SDKs return this body as the
 * call's result, so a client checks `object === 'sluice.request'`.
 */
function sendAccepted(reply: FastifyReply, r: ChatAccepted) {
  const url = resultUrl(r.requestId);
  return reply
    .code(202)
    .header('location', url)
    .header('content-type', 'application/json; charset=utf-8')
    .send(
      JSON.stringify({
        id: r.requestId,
        object: 'sluice.request',
        status: r.status,
        created_at: Math.floor(r.at / 1000),
        result_url: url,
        result_subject: r.resultSubject,
      }),
    );
}

/**
 * A stored reply as `GET /v1/sluice/requests/{id}/result` answers it: what the request itself
 * would have answered (the OpenAI object whole, with Sluice's headers; or its error with its
 * status), or 202 with the `held` notice while it waits.
 */
export function sendStored(reply: FastifyReply, r: ChatReply): FastifyReply {
  if (isAccepted(r)) return sendAccepted(reply, r);
  if (isError(r)) return sendErrorReply(reply, r.error, r.rateLimit);
  if (isChunk(r)) return sendError(reply, 'internal_error', 'The stored result is a chunk, not an answer.', 500);
  return reply
    .headers({ ...rateLimitHeaders(r.rateLimit), ...queueHeader(r.queueMs) })
    .header('x-sluice-model', r.model)
    .header('x-sluice-cache', cacheHeader(r))
    .header('content-type', 'application/json; charset=utf-8')
    .send(JSON.stringify(r.body));
}

/** Waits for the final reply and answers with its OpenAI object whole (`result.body`), or the error. */
export async function answerWhole(request: FastifyRequest, reply: FastifyReply, pending: PendingReplies): Promise<FastifyReply> {
  for (;;) {
    const next = await pending.next();
    switch (next.kind) {
      case 'closed':
        return clientGone(reply) ? reply.hijack() : sendError(reply, 'service_busy', STOPPING, Errors.service_busy.status, 1000);
      case 'deadline':
        request.log.warn('deadline passed before an answer came');
        return sendErrorReply(reply, DEADLINE);
      case 'reply': {
        const r = next.reply;
        if (isChunk(r)) continue;
        if (isError(r)) request.log.debug({ code: r.error.code }, 'answered with an error');
        else if (isAccepted(r)) request.log.info({ status: r.status }, 'held for later');
        else request.log.debug({ model: r.model, cache: cacheHeader(r) }, 'answered');
        return sendStored(reply, r);
      }
      default: {
        const _exhaustive: never = next;
        return _exhaustive;
      }
    }
  }
}

/**
 * Answers as server-sent events: the upstream's chunks as they come (chat: `data: <chunk>`, then
 * `data: [DONE]`; Responses: `event: <type>` + `data: <event>`, no [DONE]). A result with no
 * chunk before it is replayed as the stream it stands for. Headers go out with the first chunk
 * (with its rate limits), so an error before it is still a plain JSON error with its status; an
 * error after it is an SSE error event, which the SDKs throw.
 */
export async function answerStream(request: FastifyRequest, reply: FastifyReply, pending: PendingReplies, shape: StreamShape): Promise<FastifyReply> {
  const raw = reply.raw;
  const { endpoint, includeUsage } = shape;
  let started = false;
  let sawUsage = false;
  const write = (text: string) => {
    // replies queued before the client left still come out of the queue
    if (text && !raw.destroyed && !raw.writableEnded) raw.write(text);
  };
  const writeChunk = (chunk: unknown) => {
    if (endpoint !== 'chat.completions') return write(sseEvent(endpoint, chunk));
    if (isUsageChunk(chunk)) sawUsage = true;
    const forClient = chatChunkForClient(chunk, includeUsage);
    if (forClient !== undefined) write(sseEvent(endpoint, forClient));
  };
  const start = (model: string, cache: CacheKind | 'miss', rateLimit: RateLimitState | undefined, queueMs: number | undefined) => {
    reply.hijack();
    const headers: Record<string, string | number | string[]> = {};
    for (const [k, v] of Object.entries(reply.getHeaders())) if (v !== undefined) headers[k] = v;
    raw.writeHead(200, {
      ...headers,
      ...rateLimitHeaders(rateLimit),
      ...queueHeader(queueMs),
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-sluice-model': model,
      'x-sluice-cache': cache,
    });
    started = true;
  };
  const fail = (error: ChatErrorReply['error'], rateLimit?: ChatErrorReply['rateLimit']) => {
    if (!started) return sendErrorReply(reply, error, rateLimit);
    write(errorEvent(endpoint, error));
    if (!raw.writableEnded) raw.end();
    return reply;
  };

  for (;;) {
    const next = await pending.next();
    switch (next.kind) {
      case 'closed':
        if (clientGone(reply)) {
          if (!started) reply.hijack();
          return reply;
        }
        return fail({ code: 'service_busy', message: STOPPING, status: Errors.service_busy.status, retryAfterMs: 1000 });
      case 'deadline':
        request.log.warn({ started }, 'deadline passed before the answer ended');
        return fail(DEADLINE);
      case 'reply': {
        const r = next.reply;
        if (isError(r)) {
          request.log.debug({ code: r.error.code, started }, 'answered with an error');
          return fail(r.error, r.rateLimit);
        }
        if (isAccepted(r)) {
          // held comes before any chunk: a plain 202, no stream
          request.log.info({ status: r.status }, 'held for later');
          return started ? fail(DEADLINE) : sendAccepted(reply, r);
        }
        if (isChunk(r)) {
          if (!started) start(r.model, cacheHeader(r), r.rateLimit, r.queueMs);
          writeChunk(r.chunk);
          continue;
        }
        if (!started) {
          // a stage may end a stream with the result alone; the client still gets a whole stream
          start(r.model, cacheHeader(r), r.rateLimit, r.queueMs);
          // a stage may end with the result alone: the stream it stands for, the usage chunk only when asked
          for (const chunk of replayChunks(endpoint, r.body, shape.requestId, includeUsage)) writeChunk(chunk);
        } else if (endpoint === 'chat.completions' && includeUsage && !sawUsage) {
          // the client asked for usage and the stream carried none: the result's, as OpenAI's last chunk
          const usageChunk = chatChunksOf(r.body, shape.requestId, true).at(-1);
          if (isUsageChunk(usageChunk)) writeChunk(usageChunk);
        }
        if (!raw.destroyed && !raw.writableEnded) raw.end(streamEnd(endpoint));
        request.log.debug({ model: r.model, cache: cacheHeader(r) }, 'answered (stream)');
        return reply;
      }
      default: {
        const _exhaustive: never = next;
        return _exhaustive;
      }
    }
  }
}
