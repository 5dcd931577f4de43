import { describe, expect, it } from 'vitest';
import type { ChatResult } from '@sluice/contracts';
import { RequestRejected } from './rejection.js';
import { rejectedEvent, requestedEvent } from './events.js';
import { continueTrace, newRequestId } from './ids.js';
import { retryHeaders, toChunk, toCompletion, toUsageChunk } from './openai-wire.js';
import { answer, chatResult } from '@sluice/contracts/testing';

const result: ChatResult = chatResult('req_abc', answer('small', 3, 1, 'hello'), { created: 1_700_000_000 });

describe('OpenAI wire format', () => {
  it('maps a result to a chat.completion', () => {
    expect(toCompletion(result)).toMatchObject({
      id: 'chatcmpl-req_abc',
      object: 'chat.completion',
      created: 1_700_000_000,
      model: 'small',
      choices: [{ index: 0, message: { role: 'assistant', content: 'hello', refusal: null }, finish_reason: 'stop' }],
      usage: result.usage,
    });
  });

  it('marks usage null on chunks only when usage was asked for', () => {
    const shape = { requestId: 'req_abc', created: 1, includeUsage: true };
    expect(toChunk(shape, 'small', { content: 'x' })).toHaveProperty('usage', null);
    expect(toChunk({ ...shape, includeUsage: false }, 'small', { content: 'x' })).not.toHaveProperty('usage');
    expect(toUsageChunk(shape, 'small', result.usage)).toMatchObject({ choices: [], usage: result.usage });
  });

  it.each([
    [undefined, {}],
    [1, { 'retry-after': '1', 'retry-after-ms': '1' }],
    [1500, { 'retry-after': '2', 'retry-after-ms': '1500' }],
    [2000, { 'retry-after': '2', 'retry-after-ms': '2000' }],
  ])('retry headers for %j ms', (ms, headers) => {
    expect(retryHeaders(ms)).toEqual(headers);
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

  it('chat.requested has the deterministic id and the context', () => {
    const ctx = {
      request: {
        model: 'auto',
        messages: [{ role: 'user' as const, content: 'x' }],
        priority: 'standard' as const,
        stream: false,
        params: {},
        cache: 'default' as const,
      },
      frontDoor: 'http' as const,
      receivedAt: 10,
      deadline: 20,
    };
    expect(requestedEvent('req_2', 'acme', ctx)).toMatchObject({ id: 'req_2:chat.requested', tenant: 'acme', at: 10, data: { ctx } });
  });
});
