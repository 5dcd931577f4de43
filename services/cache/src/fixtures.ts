import { makeEvent, ServiceName, type ChatRequest, type RequestContext, type SluiceEvent } from '@sluice/contracts';

/** Test fixtures shared by the unit and integration specs. */
export function request(overrides: Partial<ChatRequest> = {}): ChatRequest {
  return {
    model: 'auto',
    messages: [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'What is the capital of France?' },
    ],
    priority: 'standard',
    stream: false,
    params: { temperature: 0 },
    cache: 'default',
    ...overrides,
  };
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

export function completed(
  requestId: string,
  tenant: string,
  req: ChatRequest,
  cacheKey: string | undefined,
  opts: { finishReason?: string; deployment?: string; content?: string } = {},
): SluiceEvent<'chat.completed'> {
  return makeEvent(
    'chat.completed',
    { requestId, tenant, service: ServiceName.Invoker, at: 2_000, reason: 'answered' },
    {
      ctx: context(req),
      answer: {
        model: 'gpt-4o-mini',
        message: { role: 'assistant', content: opts.content ?? 'Paris.' },
        finishReason: opts.finishReason ?? 'stop',
        usage: { prompt_tokens: 20, completion_tokens: 2, total_tokens: 22 },
      },
      deployment: opts.deployment ?? 'sim',
      attempts: 1,
      upstreamLatencyMs: 12,
      ...(cacheKey ? { cacheKey } : {}),
    },
  );
}
