import type { FastifyReply, FastifyRequest } from 'fastify';
import { Errors, isChunk, isError, type ChatErrorReply } from '@sluice/contracts';
import type { PendingReplies } from './inbox.js';
import { openAiErrorBody, retryHeaders, toChunk, toCompletion, toUsageChunk, type StreamShape } from './openai-wire.js';

const DEADLINE: ChatErrorReply['error'] = { code: 'deadline_exceeded', message: Errors.deadline_exceeded.message, status: Errors.deadline_exceeded.status };

const STOPPING = 'This gateway instance is stopping; retry and another will answer.';

/** Closed with no answer: either the client went away or the service is stopping. */
function clientGone(reply: FastifyReply): boolean {
  const socket = reply.raw.socket;
  return reply.raw.destroyed || !socket || socket.destroyed;
}

/** An OpenAI-shaped error response (status, Retry-After when known, `x-sluice-cache: miss`). */
export function sendError(reply: FastifyReply, code: string, message: string, status: number, retryAfterMs?: number, param?: string) {
  return reply
    .code(status)
    .headers(retryHeaders(retryAfterMs))
    .header('content-type', 'application/json; charset=utf-8')
    .send(openAiErrorBody(code, message, undefined, param ?? null));
}

function sendErrorReply(reply: FastifyReply, error: ChatErrorReply['error']) {
  return sendError(reply, error.code, error.message, error.status, error.retryAfterMs);
}

/** Waits for the final reply and answers with a `chat.completion` or the error. */
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
        if (isError(r)) {
          request.log.debug({ code: r.error.code }, 'answered with an error');
          return sendErrorReply(reply, r.error);
        }
        request.log.debug({ model: r.model, cached: r.cached }, 'answered');
        return reply
          .header('x-sluice-model', r.model)
          .header('x-sluice-cache', r.cached ? 'hit' : 'miss')
          .send(toCompletion(r));
      }
      default: {
        const _exhaustive: never = next;
        return _exhaustive;
      }
    }
  }
}

/**
 * Answers as server-sent events, in the sequence OpenAI's SDKs expect: chunks (the first with
 * the role), one with the finish reason, the usage chunk when asked for, `[DONE]`. Headers go
 * out with the first chunk, so an error before it is still a plain JSON error with its status;
 * an error after it is an SSE `error` event, which the SDKs throw.
 */
export async function answerStream(request: FastifyRequest, reply: FastifyReply, pending: PendingReplies, shape: StreamShape): Promise<FastifyReply> {
  const raw = reply.raw;
  let started = false;
  const write = (data: unknown) => {
    // replies queued before the client left still come out of the queue
    if (!raw.destroyed && !raw.writableEnded) raw.write(`data: ${JSON.stringify(data)}\n\n`);
  };
  const start = (model: string, cached: boolean) => {
    reply.hijack();
    const headers: Record<string, string | number | string[]> = {};
    for (const [k, v] of Object.entries(reply.getHeaders())) if (v !== undefined) headers[k] = v;
    raw.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-sluice-model': model,
      'x-sluice-cache': cached ? 'hit' : 'miss',
    });
    started = true;
  };
  const fail = (error: ChatErrorReply['error']) => {
    if (!started) return sendErrorReply(reply, error);
    write(openAiErrorBody(error.code, error.message));
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
          return fail(r.error);
        }
        if (isChunk(r)) {
          if (!started) {
            start(r.model, r.cached === true);
            write(toChunk(shape, r.model, { role: 'assistant', content: r.chunk.content }));
          } else {
            write(toChunk(shape, r.model, { content: r.chunk.content }));
          }
          continue;
        }
        // a stage may end a stream with the result alone; the client still sees a content chunk
        if (!started) {
          start(r.model, r.cached);
          write(toChunk(shape, r.model, { role: 'assistant', content: r.message.content }));
        }
        write(toChunk(shape, r.model, {}, r.finishReason));
        if (shape.includeUsage) write(toUsageChunk(shape, r.model, r.usage));
        if (!raw.destroyed && !raw.writableEnded) raw.end('data: [DONE]\n\n');
        request.log.debug({ model: r.model, cached: r.cached }, 'answered (stream)');
        return reply;
      }
      default: {
        const _exhaustive: never = next;
        return _exhaustive;
      }
    }
  }
}
