import { createHash } from 'node:crypto';
import { makeEvent, ServiceName, type ChatRequest, type RequestContext, type SluiceEvent } from '@sluice/contracts';
import { answer, chatRequest } from '@sluice/contracts/testing';

/** Test fixtures shared by the unit and integration specs. */

/** A key as ingress makes them (`<tenant>.<sha256>`), here of a test's own words. */
export function keyOf(tenant: string, words: string): string {
  return `${tenant}.${createHash('sha256').update(words).digest('hex')}`;
}

/** The facts of an `auto` chat request whose key is `keyOf('acme', 'capital of France')`. */
export function request(overrides: Partial<ChatRequest> = {}): ChatRequest {
  return chatRequest({ model: 'auto', cacheKey: keyOf('acme', 'capital of France'), ...overrides });
}

/** Received long ago (at 1 s), but with a deadline a minute from now: the lookup consumer ends requests past theirs. */
function context(req: ChatRequest, replyTo?: string): RequestContext {
  return { request: req, frontDoor: 'nats', receivedAt: 1_000, deadline: Date.now() + 60_000, ...(replyTo ? { replyTo } : {}) };
}

export function admitted(requestId: string, tenant: string, req: ChatRequest, replyTo?: string): SluiceEvent<'chat.admitted'> {
  return makeEvent(
    'chat.admitted',
    { requestId, tenant, service: ServiceName.Limiter, at: 1_000, reason: 'within limits' },
    { ctx: context(req, replyTo), estimatedTokens: 42 },
  );
}

/** A tool call as OpenAI answers one. */
export const TOOL_CALL = { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } };

export function completed(
  requestId: string,
  tenant: string,
  req: ChatRequest,
  cacheKey: string | undefined,
  opts: { finishReason?: string; deployment?: string; content?: string; toolCalls?: boolean } = {},
): SluiceEvent<'chat.completed'> {
  const a = answer('gpt-4o-mini', 20, 2, opts.content ?? 'Paris.');
  const body = a.body as { choices: Array<{ message: Record<string, unknown>; finish_reason: string }> };
  body.choices[0]!.finish_reason = opts.finishReason ?? (opts.toolCalls ? 'tool_calls' : 'stop');
  if (opts.toolCalls) body.choices[0]!.message = { role: 'assistant', content: null, refusal: null, tool_calls: [TOOL_CALL] };
  return makeEvent(
    'chat.completed',
    { requestId, tenant, service: ServiceName.Invoker, at: 2_000, reason: 'answered' },
    {
      ctx: context(req),
      answer: a,
      deployment: opts.deployment ?? 'sim',
      attempts: 1,
      upstreamLatencyMs: 12,
      ...(cacheKey ? { cacheKey } : {}),
    },
  );
}
