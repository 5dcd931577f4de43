import { describe, expect, it } from 'vitest';
import { chatChunksOf, replayChunks, type RequestContext } from '@sluice/contracts';
import { answer, chatBody, chatRequest, requestContext } from '@sluice/contracts/testing';
import { RequestRejected } from './rejection.js';
import { rejectedEvent, requestedEvent } from './events.js';
import { continueTrace, newRequestId } from './ids.js';
import { chatChunkForClient, errorEvent, rateLimitHeaders, retryHeaders, sseEvent, streamEnd } from './openai-wire.js';

const completion = answer('small', 3, 1, 'hello').body;
const usage = { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 };

describe('OpenAI wire format', () => {
  it('without include_usage drops the usage chunk and the usage key of the others', () => {
    const [first, finish, last] = chatChunksOf(completion, 'req_abc', true);
    expect(first).toHaveProperty('usage', null);
    expect(chatChunkForClient(first, false)).not.toHaveProperty('usage');
    expect(chatChunkForClient(finish, false)).toMatchObject({ choices: [{ finish_reason: 'stop' }] });
    expect(last).toMatchObject({ choices: [], usage });
    expect(chatChunkForClient(last, false)).toBeUndefined();
    // asked for: every chunk as the upstream sent it
    for (const c of [first, finish, last]) expect(chatChunkForClient(c, true)).toBe(c);
  });

  it('frames chat chunks as data lines and Responses events with their type', () => {
    expect(sseEvent('chat.completions', { a: 1 })).toBe('data: {"a":1}\n\n');
    expect(sseEvent('responses', { type: 'response.output_text.delta', delta: 'x' })).toBe(
      'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"x"}\n\n',
    );
    expect(streamEnd('chat.completions')).toBe('data: [DONE]\n\n');
    expect(streamEnd('responses')).toBe('');
  });

  it('replays a whole answer as the stream it stands for', () => {
    expect(replayChunks('chat.completions', completion, 'req_abc', false).map((c) => (c as { choices: unknown[] }).choices.length)).toEqual([1, 1]);
    const response = { id: 'resp_1', object: 'response', output: [], usage: { input_tokens: 1, output_tokens: 0 } };
    expect(replayChunks('responses', response, 'req_abc', false).map((e) => (e as { type: string }).type)).toEqual([
      'response.created',
      'response.in_progress',
      'response.completed',
    ]);
  });

  it("writes an error after the stream started as an event the SDKs throw, with an upstream's type and param", () => {
    const error = { code: 'context_length_exceeded', message: 'too long', status: 400, type: 'invalid_request_error', param: 'messages' };
    const body = { error: { message: 'too long', type: 'invalid_request_error', param: 'messages', code: 'context_length_exceeded' } };
    expect(errorEvent('chat.completions', error)).toBe(`data: ${JSON.stringify(body)}\n\n`);
    const responses = errorEvent('responses', error);
    expect(responses.startsWith('event: error\ndata: ')).toBe(true);
    expect(JSON.parse(responses.slice('event: error\ndata: '.length))).toEqual({
      type: 'error',
      code: 'context_length_exceeded',
      message: 'too long',
      param: 'messages',
      ...body,
    });
  });

  it.each([
    [undefined, {}],
    [1, { 'retry-after': '1', 'retry-after-ms': '1' }],
    [1500, { 'retry-after': '2', 'retry-after-ms': '1500' }],
    [2000, { 'retry-after': '2', 'retry-after-ms': '2000' }],
  ])('retry headers for %j ms', (ms, headers) => {
    expect(retryHeaders(ms)).toEqual(headers);
  });

  it("sends OpenAI's rate-limit headers from the tightest limits", () => {
    expect(rateLimitHeaders(undefined)).toEqual({});
    expect(rateLimitHeaders({ requests: { limit: 60, remaining: 59, resetMs: 1000 }, tokens: { limit: 150_000, remaining: -5, resetMs: 360_000 } })).toEqual({
      'x-ratelimit-limit-requests': '60',
      'x-ratelimit-remaining-requests': '59',
      'x-ratelimit-reset-requests': '1s',
      'x-ratelimit-limit-tokens': '150000',
      'x-ratelimit-remaining-tokens': '0',
      'x-ratelimit-reset-tokens': '6m0s',
    });
  });
});

describe('ids', () => {
  it('request ids are req_ plus 20 base32 characters, and differ', () => {
    const a = newRequestId();
    expect(a).toMatch(/^req_[a-z2-7]{20}$/);
    expect(newRequestId()).not.toBe(a);
  });

  it('stay unique across refills of the random pool', () => {
    // ~90 requests' worth of bytes per fill: 1,000 ids and traces span about ten refills
    const ids = new Set(Array.from({ length: 1000 }, () => newRequestId()));
    const traces = new Set(Array.from({ length: 1000 }, () => continueTrace(undefined)));
    expect(ids.size).toBe(1000);
    expect(traces.size).toBe(1000);
  });

  it('continues a caller trace with a new span, or starts one', () => {
    const incoming = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const next = continueTrace(incoming);
    expect(next).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    expect(next).not.toBe(incoming);
    expect(continueTrace('garbage')).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(continueTrace('00-00000000000000000000000000000000-00f067aa0ba902b7-01')).not.toContain('00000000000000000000000000000000');
  });
});

describe('events', () => {
  it('a rejection before the tenant is known goes to _unknown and never carries a key', () => {
    const e = rejectedEvent('req_1', new RequestRejected('invalid_api_key'), { tenant: undefined, receivedAt: 5 }, 6);
    expect(e).toMatchObject({ id: 'req_1:chat.rejected', type: 'chat.rejected', tenant: '_unknown', service: 'ingress', at: 6 });
    expect(e.data).toEqual({ code: 'invalid_api_key', status: 401, message: e.reason, stage: 'ingress', receivedAt: 5 });
  });

  it('a rejection carries what was known of the request', () => {
    const e = rejectedEvent(
      'req_1',
      new RequestRejected('model_not_found', 'nope', 'model', { model: 'x', user: 'u' }),
      { tenant: 'acme', receivedAt: 5, replyTo: '_INBOX.1' },
      6,
    );
    expect(e.data).toMatchObject({ model: 'x', user: 'u', replyTo: '_INBOX.1', status: 404 });
  });

  it('chat.requested has the deterministic id, the context and the body as sent', () => {
    const ctx: RequestContext = requestContext(chatRequest({ endpoint: 'chat.completions' }), { frontDoor: 'http', receivedAt: 10 });
    const body = chatBody('x', 'auto', { tools: [{ type: 'function', function: { name: 'f' } }] });
    const e = requestedEvent('req_2', 'acme', ctx, body);
    expect(e).toMatchObject({ id: 'req_2:chat.requested', tenant: 'acme', at: 10 });
    expect(e.data).toEqual({ ctx, body });
    expect(e.data.body).toBe(body);
  });
});
