import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '@sluice/contracts';
import { RequestRejected } from './rejection.js';
import { checkModel, normaliseChat, parseJsonBody, validateChat, type ChatHints } from './validate.js';
import { thrown } from '@sluice/contracts/testing';

const rejected = (fn: () => unknown) => thrown(fn, RequestRejected);

const config = parseConfig(JSON.parse(readFileSync(new URL('./fixtures/config.json', import.meta.url), 'utf8')));
const acme = config.tenants.find((t) => t.id === 'acme')!;
const beta = config.tenants.find((t) => t.id === 'beta')!;
const limits = { maxMessages: 3 };
const hi = [{ role: 'user', content: 'hi' }];

describe('normaliseChat', () => {
  it('given a minimal body, then it fills the defaults', () => {
    const { request, includeUsage } = normaliseChat({ messages: hi }, {}, limits);
    expect(request).toEqual({ model: 'auto', messages: hi, priority: 'standard', stream: false, params: {}, cache: 'default' });
    expect(includeUsage).toBe(false);
  });

  it('given every field, then it normalises each', () => {
    const { request, includeUsage } = normaliseChat(
      {
        model: 'small',
        messages: [
          { role: 'system', content: 'be brief', name: 'sys' },
          {
            role: 'user',
            content: [
              { type: 'text', text: 'part one' },
              { type: 'text', text: 'part two' },
            ],
          },
        ],
        user: 'u-1',
        feature: 'body-feature',
        priority: 'batch',
        stream: true,
        stream_options: { include_usage: true },
        metadata: { team: 'search' },
        temperature: 0.5,
        top_p: 0.9,
        max_tokens: 10,
        max_completion_tokens: 20,
        stop: 'END',
        presence_penalty: -1,
        frequency_penalty: 2,
        seed: 42,
        n: 1,
        tools: [],
        logprobs: false,
      },
      { feature: { value: 'header-feature', param: 'x-sluice-feature' }, cache: { value: 'skip', param: 'x-sluice-cache' } },
      limits,
    );
    expect(request).toEqual({
      model: 'small',
      messages: [
        { role: 'system', content: 'be brief', name: 'sys' },
        { role: 'user', content: 'part one\npart two' },
      ],
      user: 'u-1',
      feature: 'header-feature',
      priority: 'batch',
      stream: true,
      metadata: { team: 'search' },
      params: { temperature: 0.5, top_p: 0.9, max_tokens: 20, stop: ['END'], presence_penalty: -1, frequency_penalty: 2, seed: 42 },
      cache: 'skip',
    });
    expect(includeUsage).toBe(true);
  });

  it('given nulls for optional fields, then they count as absent', () => {
    const { request } = normaliseChat(
      { messages: hi, model: null, user: null, temperature: null, stop: null, n: null, metadata: null, stream: null, stream_options: null },
      {},
      limits,
    );
    expect(request.model).toBe('auto');
    expect(request.params).toEqual({});
    expect(request.stream).toBe(false);
  });

  it('given a priority header and a body priority, then the header wins', () => {
    const { request } = normaliseChat({ messages: hi, priority: 'low' }, { priority: { value: 'critical', param: 'x-sluice-priority' } }, limits);
    expect(request.priority).toBe('critical');
  });

  it('given a metadata key "__proto__", then it stays data', () => {
    const { request } = normaliseChat(JSON.parse('{"messages":[{"role":"user","content":"x"}],"metadata":{"__proto__":"v"}}'), {}, limits);
    expect(Object.getPrototypeOf(request.metadata)).toBe(Object.prototype);
    expect(Object.keys(request.metadata!)).toEqual(['__proto__']);
  });

  const bad: Array<[string, unknown, string, ChatHints?]> = [
    ['body is an array', [hi], 'body'],
    ['body is a string', 'hello', 'body'],
    ['body is null', null, 'body'],
    ['messages missing', {}, 'messages'],
    ['messages not an array', { messages: 'hi' }, 'messages'],
    ['messages empty', { messages: [] }, 'messages'],
    ['too many messages', { messages: [...hi, ...hi, ...hi, ...hi] }, 'messages'],
    ['message not an object', { messages: ['hi'] }, 'messages[0]'],
    ['role missing', { messages: [{ content: 'x' }] }, 'messages[0].role'],
    ['role unknown', { messages: [...hi, { role: 'wizard', content: 'x' }] }, 'messages[1].role'],
    ['content missing', { messages: [{ role: 'user' }] }, 'messages[0].content'],
    ['content a number', { messages: [{ role: 'user', content: 5 }] }, 'messages[0].content'],
    ['content null', { messages: [{ role: 'assistant', content: null }] }, 'messages[0].content'],
    ['content parts empty', { messages: [{ role: 'user', content: [] }] }, 'messages[0].content'],
    ['content part is an image', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, 'messages[0].content[0]'],
    ['content part text not a string', { messages: [{ role: 'user', content: [{ type: 'text', text: 1 }] }] }, 'messages[0].content[0].text'],
    ['name empty', { messages: [{ role: 'user', content: 'x', name: '' }] }, 'messages[0].name'],
    ['model empty', { messages: hi, model: '' }, 'model'],
    ['model a number', { messages: hi, model: 4 }, 'model'],
    ['model too long', { messages: hi, model: 'm'.repeat(257) }, 'model'],
    ['n is 2', { messages: hi, n: 2 }, 'n'],
    ['n is 0', { messages: hi, n: 0 }, 'n'],
    ['tools given', { messages: hi, tools: [{ type: 'function' }] }, 'tools'],
    ['stream a string', { messages: hi, stream: 'yes' }, 'stream'],
    ['stream_options without stream', { messages: hi, stream_options: { include_usage: true } }, 'stream_options'],
    ['stream_options not an object', { messages: hi, stream: true, stream_options: true }, 'stream_options'],
    ['include_usage a string', { messages: hi, stream: true, stream_options: { include_usage: 'yes' } }, 'stream_options.include_usage'],
    ['temperature above 2', { messages: hi, temperature: 2.5 }, 'temperature'],
    ['temperature negative', { messages: hi, temperature: -0.1 }, 'temperature'],
    ['temperature a string', { messages: hi, temperature: '1' }, 'temperature'],
    ['top_p above 1', { messages: hi, top_p: 1.5 }, 'top_p'],
    ['max_tokens zero', { messages: hi, max_tokens: 0 }, 'max_tokens'],
    ['max_tokens fractional', { messages: hi, max_tokens: 1.5 }, 'max_tokens'],
    ['max_completion_tokens too big', { messages: hi, max_completion_tokens: 200_000 }, 'max_completion_tokens'],
    ['stop a number', { messages: hi, stop: 3 }, 'stop'],
    ['stop with an empty string', { messages: hi, stop: [''] }, 'stop'],
    ['stop with five sequences', { messages: hi, stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
    ['presence_penalty below -2', { messages: hi, presence_penalty: -3 }, 'presence_penalty'],
    ['frequency_penalty above 2', { messages: hi, frequency_penalty: 3 }, 'frequency_penalty'],
    ['seed fractional', { messages: hi, seed: 1.5 }, 'seed'],
    ['user a number', { messages: hi, user: 7 }, 'user'],
    ['user empty', { messages: hi, user: '' }, 'user'],
    ['feature an object', { messages: hi, feature: {} }, 'feature'],
    ['priority unknown in the body', { messages: hi, priority: 'urgent' }, 'priority'],
    ['priority a number in the body', { messages: hi, priority: 1 }, 'priority'],
    ['priority unknown in a header', { messages: hi }, 'x-sluice-priority', { priority: { value: 'urgent', param: 'x-sluice-priority' } }],
    ['cache header unknown', { messages: hi }, 'x-sluice-cache', { cache: { value: 'never', param: 'x-sluice-cache' } }],
    ['feature header empty', { messages: hi }, 'x-sluice-feature', { feature: { value: '', param: 'x-sluice-feature' } }],
    ['metadata an array', { messages: hi, metadata: ['a'] }, 'metadata'],
    ['metadata value a number', { messages: hi, metadata: { a: 1 } }, 'metadata.a'],
    ['metadata value too long', { messages: hi, metadata: { a: 'x'.repeat(513) } }, 'metadata.a'],
    ['metadata with 17 keys', { messages: hi, metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) }, 'metadata'],
    ['metadata key too long', { messages: hi, metadata: { ['k'.repeat(65)]: 'v' } }, 'metadata'],
  ];
  it.each(bad)('given %s, then invalid_request naming %s', (_name, body, param, hints) => {
    const r = rejected(() => normaliseChat(body, hints ?? {}, limits));
    expect(r.code).toBe('invalid_request');
    expect(r.status).toBe(400);
    expect(r.param).toBe(param);
    expect(r.message).toContain(param === 'body' ? 'body' : param.replace(/\[\d+\].*$/, ''));
  });
});

describe('checkModel', () => {
  const request = (model: string) => normaliseChat({ messages: hi, model, user: 'u-9' }, {}, limits).request;

  it('given auto or a model the tenant may use, then it passes', () => {
    expect(() => checkModel(request('auto'), beta, config)).not.toThrow();
    expect(() => checkModel(request('small'), beta, config)).not.toThrow();
    expect(() => checkModel(request('large'), acme, config)).not.toThrow();
  });

  it('given an unknown model, then model_not_found with what was known', () => {
    const r = rejected(() => checkModel(request('gpt-9'), acme, config));
    expect([r.code, r.status, r.param]).toEqual(['model_not_found', 404, 'model']);
    expect(r.known).toEqual({ model: 'gpt-9', user: 'u-9' });
  });

  it('given a model outside the tenant list, then model_not_allowed', () => {
    const r = rejected(() => checkModel(request('large'), beta, config));
    expect([r.code, r.status]).toEqual(['model_not_allowed', 403]);
  });

  it('given an inherited property name as the model, then model_not_found', () => {
    expect(rejected(() => checkModel(request('constructor'), acme, config)).code).toBe('model_not_found');
  });

  it('validateChat applies the configured message limit', () => {
    const messages = Array.from({ length: config.ingress.maxMessages + 1 }, () => hi[0]);
    expect(rejected(() => validateChat({ messages }, {}, acme, config)).param).toBe('messages');
  });
});

describe('parseJsonBody', () => {
  it.each(['', '   ', '{', '{"messages":', 'nope'])('given %j, then invalid_json', (text) => {
    const r = rejected(() => parseJsonBody(text));
    expect([r.code, r.status]).toEqual(['invalid_json', 400]);
  });

  it('given JSON, then the value', () => {
    expect(parseJsonBody('{"a":1}')).toEqual({ a: 1 });
  });
});
