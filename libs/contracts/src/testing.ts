// Test support shared by the services' specs (vitest): assertions on the contracts' shapes, and
// builders of valid requests and events, so a spec states only the values its assertions are about.
import { expect } from 'vitest';
import { makeEvent, type Answer, type EventDataOf, type EventType, type ServiceName, type SluiceEvent } from './events.js';
import type { ChatRequest, RequestContext } from './request.js';
import type { ChatResult } from './reply.js';

/** An error body as the catalogue sends it (`openAiErrorBody`). */
export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string };
}

/**
 * Asserts the catalogue's error shape, exactly: only `error`, with its four fields, the given
 * code and a message. Returns the error for further checks.
 *
 * @example
 * expectErrorShape(await res.json(), 'not_found').message // 'No request ...'
 */
export function expectErrorShape(body: unknown, code: string): ErrorBody['error'] {
  expect(Object.keys(body as object)).toEqual(['error']);
  const error = (body as ErrorBody).error;
  expect(Object.keys(error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(error.code).toBe(code);
  expect(error.message.length).toBeGreaterThan(0);
  return error;
}

/**
 * The error `fn` throws, which must be an instance of `type`; anything else fails the test.
 *
 * @example
 * expect(thrown(() => parseJsonBody('{'), RequestRejected).code).toBe('invalid_json');
 */
export function thrown<E extends Error>(fn: () => unknown, type: abstract new (...args: never[]) => E): E {
  try {
    fn();
  } catch (e) {
    if (e instanceof type) return e;
    throw e;
  }
  throw new Error(`expected ${type.name} to be thrown`);
}

/**
 * A valid request's facts: a chat completion for model `m1` (the one model of `minimalConfig`),
 * 10 prompt tokens, one choice, standard priority, not streamed, cached as usual (no key).
 *
 * @example
 * chatRequest({ model: 'auto', maxOutputTokens: 100 })
 */
export function chatRequest(over: Partial<ChatRequest> = {}): ChatRequest {
  return {
    endpoint: 'chat.completions',
    model: 'm1',
    priority: 'standard',
    stream: false,
    cache: 'default',
    promptTokens: 10,
    choices: 1,
    complexity: { score: 0, promptTokens: 10, turns: 1, code: false, keywords: [] },
    ...over,
  };
}

/** A chat completions body: one user message saying `content`, for `model`. */
export function chatBody(content = 'hello', model = 'm1', over: Record<string, unknown> = {}): Record<string, unknown> {
  return { model, messages: [{ role: 'user', content }], ...over };
}

/**
 * What ingress adds to a request: arrived over NATS now (or at `over.receivedAt`), with a
 * deadline a minute later, no reply inbox unless given.
 *
 * @example
 * requestContext(chatRequest(), { replyTo: 'test.reply.r1' })
 */
export function requestContext(request: ChatRequest = chatRequest(), over: Partial<RequestContext> = {}): RequestContext {
  const receivedAt = over.receivedAt ?? Date.now();
  return { request, frontDoor: 'nats', receivedAt, deadline: receivedAt + 60_000, ...over };
}

/** An upstream answer: a `chat.completion` saying `content` from `model` with the given token counts. */
export function answer(model = 'm1', promptTokens = 10, completionTokens = 5, content = 'hi'): Answer {
  const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
  const body = {
    id: 'chatcmpl-test',
    object: 'chat.completion',
    created: 0,
    model,
    choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' }],
    usage,
    system_fingerprint: null,
  };
  return { model, body, usage };
}

/** The first choice's message content of a chat completion body (a result's or an answer's). */
export function contentOf(body: unknown): string | null {
  return (body as { choices: Array<{ message: { content: string | null } }> }).choices[0]!.message.content;
}

/** The result a client gets for an answer (`cached: false` unless `over` says otherwise). */
export function chatResult(requestId: string, a: Answer, over: Partial<ChatResult> = {}): ChatResult {
  return { requestId, ...a, cached: false, created: 0, ...over };
}

/** The envelope of a built event: by default the stage that emits it, now, reason `test`. */
export interface Envelope {
  service?: ServiceName;
  at?: number;
  reason?: string;
  suffix?: string | number;
}

function build<T extends EventType>(
  type: T,
  service: ServiceName,
  requestId: string,
  tenant: string,
  data: EventDataOf<T>,
  envelope: Envelope,
): SluiceEvent<T> {
  return makeEvent(type, { requestId, tenant, service, at: Date.now(), reason: 'test', ...envelope }, data);
}

/**
 * `chat.requested` from ingress; `ctx` defaults to `requestContext()`.
 *
 * @example
 * requested('r1', 'acme', { ctx: requestContext(chatRequest({ stream: true })) })
 */
export function requested(
  requestId: string,
  tenant: string,
  data: Partial<EventDataOf<'chat.requested'>> = {},
  envelope: Envelope = {},
): SluiceEvent<'chat.requested'> {
  return build('chat.requested', 'ingress', requestId, tenant, { ctx: requestContext(), body: chatBody(), ...data }, envelope);
}

/** `chat.admitted` from the limiter: 10 estimated tokens unless given. */
export function admitted(
  requestId: string,
  tenant: string,
  data: Partial<EventDataOf<'chat.admitted'>> = {},
  envelope: Envelope = {},
): SluiceEvent<'chat.admitted'> {
  return build('chat.admitted', 'limiter', requestId, tenant, { ctx: requestContext(), estimatedTokens: 10, ...data }, envelope);
}

/** `cache.missed` from the cache: 10 estimated tokens, no key unless given. */
export function missed(
  requestId: string,
  tenant: string,
  data: Partial<EventDataOf<'cache.missed'>> = {},
  envelope: Envelope = {},
): SluiceEvent<'cache.missed'> {
  return build('cache.missed', 'cache', requestId, tenant, { ctx: requestContext(), estimatedTokens: 10, ...data }, envelope);
}

/**
 * `chat.routed` from the router: tier `only` and deployment `d1` of `minimalConfig`, for the
 * request's model, at full service.
 */
export function routed(requestId: string, tenant: string, data: Partial<EventDataOf<'chat.routed'>> = {}, envelope: Envelope = {}): SluiceEvent<'chat.routed'> {
  const ctx = data.ctx ?? requestContext();
  return build(
    'chat.routed',
    'router',
    requestId,
    tenant,
    { ctx, tier: 'only', lane: 'standard', candidates: [{ model: ctx.request.model, deployment: 'd1' }], degradeLevel: 0, ...data },
    envelope,
  );
}

/** `chat.completed` from the invoker: `answer()` from the request's model on `d1`, first attempt. */
export function completed(
  requestId: string,
  tenant: string,
  data: Partial<EventDataOf<'chat.completed'>> = {},
  envelope: Envelope = {},
): SluiceEvent<'chat.completed'> {
  const ctx = data.ctx ?? requestContext();
  return build(
    'chat.completed',
    'invoker',
    requestId,
    tenant,
    { ctx, answer: answer(ctx.request.model), deployment: 'd1', attempts: 1, upstreamLatencyMs: 5, ...data },
    envelope,
  );
}
