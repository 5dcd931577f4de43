import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '@sluice/contracts';
import { RequestRejected } from './rejection.js';
import { checkBody, checkModel, parseJsonBody, validateRequest, type ChatHints } from './validate.js';
import { thrown } from '@sluice/contracts/testing';

const rejected = (fn: () => unknown) => thrown(fn, RequestRejected);
async function rejectedAsync(p: Promise<unknown>): Promise<RequestRejected> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (e instanceof RequestRejected) return e;
  throw new Error(`expected a RequestRejected, got ${String(e)}`);
}

const config = parseConfig(JSON.parse(readFileSync(new URL('./fixtures/config.json', import.meta.url), 'utf8')));
const acme = config.tenants.find((t) => t.id === 'acme')!;
const beta = config.tenants.find((t) => t.id === 'beta')!;
const limits = { maxMessages: 3 };
const hi = [{ role: 'user', content: 'hi' }];

const check = (body: unknown, hints: ChatHints = {}) => checkBody('chat.completions', body, hints, limits);

describe('checkBody: chat completions', () => {
  it('given a minimal body, then it fills the defaults and keeps the body itself', () => {
    const body = { messages: hi };
    const { choices, body: kept, includeUsage } = check(body);
    expect(choices).toEqual({ endpoint: 'chat.completions', model: 'auto', priority: 'standard', stream: false, cache: 'default' });
    expect(kept).toBe(body);
    expect(body).toEqual({ messages: hi });
    expect(includeUsage).toBe(false);
  });

  it('given every OpenAI field and some it has not invented yet, then the body is the same object, unchanged', () => {
    const body = {
      model: 'small',
      messages: [
        { role: 'developer', content: 'be brief', name: 'dev' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'what is this?' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'low' } },
            { type: 'input_audio', input_audio: { data: 'UklGRg==', format: 'wav' } },
            { type: 'file', file: { file_id: 'file-1' } },
          ],
        },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'look', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: 'a cat' },
        { role: 'assistant', content: null, refusal: 'I cannot help with that.' },
        { role: 'assistant', content: null, function_call: { name: 'look', arguments: '{}' } },
        { role: 'function', name: 'look', content: 'a dog' },
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
      max_completion_tokens: 200_000,
      stop: ['END', 'STOP'],
      presence_penalty: -1,
      frequency_penalty: 2,
      seed: 42,
      n: 3,
      tools: [
        { type: 'function', function: { name: 'look_up-2', parameters: { type: 'object' } } },
        { type: 'custom', custom: { name: 'x y' } },
      ],
      tool_choice: { type: 'function', function: { name: 'look_up-2' } },
      parallel_tool_calls: false,
      functions: [{ name: 'look' }],
      function_call: 'auto',
      response_format: { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object' }, strict: true } },
      logit_bias: { '50256': -100, '1234': 5.5 },
      logprobs: true,
      top_logprobs: 20,
      reasoning_effort: 'low',
      modalities: ['text', 'audio'],
      audio: { voice: 'alloy', format: 'wav' },
      prediction: { type: 'content', content: 'x' },
      service_tier: 'auto',
      store: true,
      web_search_options: {},
      next_months_field: { anything: [1, 2, 3] },
    };
    const before = structuredClone(body);
    const hints = { feature: { value: 'header-feature', param: 'x-sluice-feature' }, cache: { value: 'skip', param: 'x-sluice-cache' } };
    const { choices, body: kept, includeUsage } = checkBody('chat.completions', body, hints, { maxMessages: 8 });
    expect(kept).toBe(body);
    expect(body).toEqual(before);
    expect(choices).toEqual({
      endpoint: 'chat.completions',
      model: 'small',
      user: 'u-1',
      feature: 'header-feature',
      priority: 'batch',
      stream: true,
      cache: 'skip',
    });
    expect(includeUsage).toBe(true);
  });

  it.each([
    ['tools', { tools: [{ type: 'function', function: { name: 'get_weather', parameters: {} } }] }],
    ['a tool_choice string', { tool_choice: 'required' }],
    ['response_format json_object', { response_format: { type: 'json_object' } }],
    ['response_format text', { response_format: { type: 'text' } }],
    ['n = 128', { n: 128 }],
    ['a stop string', { stop: 'END' }],
    ['top_logprobs 0 with logprobs', { logprobs: true, top_logprobs: 0 }],
    ['an empty logit_bias', { logit_bias: {} }],
  ])('given %s, then it passes through whole', (_name, extra) => {
    const body = { messages: hi, ...extra };
    expect(check(body).body).toEqual({ messages: hi, ...extra });
  });

  it('given nulls for optional fields, then they count as absent', () => {
    const { choices } = check({
      messages: hi,
      model: null,
      user: null,
      temperature: null,
      stop: null,
      n: null,
      metadata: null,
      stream: null,
      stream_options: null,
      tools: null,
      response_format: null,
    });
    expect(choices.model).toBe('auto');
    expect(choices.stream).toBe(false);
  });

  it('given a priority header and a body priority, then the header wins', () => {
    const { choices } = check({ messages: hi, priority: 'low' }, { priority: { value: 'critical', param: 'x-sluice-priority' } });
    expect(choices.priority).toBe('critical');
  });

  it('given a metadata key "__proto__", then it passes and stays data', () => {
    const { body } = check(JSON.parse('{"messages":[{"role":"user","content":"x"}],"metadata":{"__proto__":"v"}}'));
    expect(Object.keys((body as { metadata: object }).metadata)).toEqual(['__proto__']);
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
    ['content null on an assistant that did nothing else', { messages: [{ role: 'assistant', content: null }] }, 'messages[0].content'],
    ['content null on an assistant with empty tool_calls', { messages: [{ role: 'assistant', content: null, tool_calls: [] }] }, 'messages[0].content'],
    ['content null on a user message', { messages: [{ role: 'user', content: null, tool_calls: [{}] }] }, 'messages[0].content'],
    ['content parts empty', { messages: [{ role: 'user', content: [] }] }, 'messages[0].content'],
    ['content part a string', { messages: [{ role: 'user', content: ['hi'] }] }, 'messages[0].content[0]'],
    ['content part without a type', { messages: [{ role: 'user', content: [{ text: 'hi' }] }] }, 'messages[0].content[0]'],
    ['content part text not a string', { messages: [{ role: 'user', content: [{ type: 'text', text: 1 }] }] }, 'messages[0].content[0].text'],
    ['image_url part without image_url', { messages: [{ role: 'user', content: [{ type: 'image_url', url: 'x' }] }] }, 'messages[0].content[0].image_url'],
    [
      'image_url part with a url not a string',
      { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 1 } }] }] },
      'messages[0].content[0].image_url.url',
    ],
    ['tool message without tool_call_id', { messages: [{ role: 'tool', content: 'x' }] }, 'messages[0].tool_call_id'],
    ['tool_calls not an array', { messages: [{ role: 'assistant', content: null, tool_calls: {} }] }, 'messages[0].tool_calls'],
    ['a tool call not an object', { messages: [{ role: 'assistant', content: null, tool_calls: ['call'] }] }, 'messages[0].tool_calls[0]'],
    ['refusal not a string', { messages: [{ role: 'assistant', content: 'x', refusal: 1 }] }, 'messages[0].refusal'],
    ['name empty', { messages: [{ role: 'user', content: 'x', name: '' }] }, 'messages[0].name'],
    ['model empty', { messages: hi, model: '' }, 'model'],
    ['model a number', { messages: hi, model: 4 }, 'model'],
    ['model too long', { messages: hi, model: 'm'.repeat(257) }, 'model'],
    ['n is 0', { messages: hi, n: 0 }, 'n'],
    ['n is 129', { messages: hi, n: 129 }, 'n'],
    ['n fractional', { messages: hi, n: 1.5 }, 'n'],
    ['tools not an array', { messages: hi, tools: { type: 'function' } }, 'tools'],
    ['a tool not an object', { messages: hi, tools: ['get_weather'] }, 'tools[0]'],
    ['a function tool without function', { messages: hi, tools: [{ type: 'function' }] }, 'tools[0].function'],
    ['a function name with a space', { messages: hi, tools: [{ type: 'function', function: { name: 'get weather' } }] }, 'tools[0].function.name'],
    ['a function name of 65 characters', { messages: hi, tools: [{ type: 'function', function: { name: 'f'.repeat(65) } }] }, 'tools[0].function.name'],
    ['tool_choice unknown', { messages: hi, tool_choice: 'always' }, 'tool_choice'],
    ['tool_choice an object without type', { messages: hi, tool_choice: { function: { name: 'f' } } }, 'tool_choice'],
    ['response_format a string', { messages: hi, response_format: 'json' }, 'response_format'],
    ['response_format of an unknown type', { messages: hi, response_format: { type: 'yaml' } }, 'response_format.type'],
    ['json_schema without json_schema', { messages: hi, response_format: { type: 'json_schema' } }, 'response_format.json_schema'],
    ['json_schema without a name', { messages: hi, response_format: { type: 'json_schema', json_schema: { schema: {} } } }, 'response_format.json_schema.name'],
    ['logit_bias an array', { messages: hi, logit_bias: [1] }, 'logit_bias'],
    ['a logit_bias over 100', { messages: hi, logit_bias: { '42': 101 } }, 'logit_bias.42'],
    ['a logit_bias a string', { messages: hi, logit_bias: { '42': 'high' } }, 'logit_bias.42'],
    ['logprobs a string', { messages: hi, logprobs: 'yes' }, 'logprobs'],
    ['top_logprobs over 20', { messages: hi, logprobs: true, top_logprobs: 21 }, 'top_logprobs'],
    ['top_logprobs without logprobs', { messages: hi, top_logprobs: 2 }, 'top_logprobs'],
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
    ['max_completion_tokens zero', { messages: hi, max_completion_tokens: 0 }, 'max_completion_tokens'],
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
    const r = rejected(() => check(body, hints));
    expect(r.code).toBe('invalid_request');
    expect(r.status).toBe(400);
    expect(r.param).toBe(param);
    expect(r.message).toContain(param === 'body' ? 'body' : param.replace(/\[\d+\].*$/, ''));
  });
});

describe('checkBody: the cache TTL and namespace headers', () => {
  const ttl = (value: string) => ({ cacheTtl: { value, param: 'x-sluice-cache-ttl' } });
  const ns = (value: string) => ({ cacheNamespace: { value, param: 'x-sluice-cache-namespace' } });

  it('given a TTL and a namespace, then both are choices', () => {
    const { choices } = check({ messages: hi }, { ...ttl('86400'), ...ns('team.a-1_b') });
    expect(choices).toMatchObject({ cacheTtlSeconds: 86_400, cacheNamespace: 'team.a-1_b', cache: 'default' });
  });

  it('given a TTL that is not whole seconds from 1 to a year, then it is refused naming the header', () => {
    for (const value of ['0', '31536001', '2.0', '1e2', ' 5', '0x10', '']) {
      const e = rejected(() => check({ messages: hi }, ttl(value)));
      expect([e.code, e.param]).toEqual(['invalid_request', 'x-sluice-cache-ttl']);
    }
    expect(check({ messages: hi }, ttl('007')).choices.cacheTtlSeconds).toBe(7);
  });

  it('given a namespace outside the pattern, then it is refused naming the header', () => {
    for (const value of ['', 'a b', 'x'.repeat(65), 'ü', 'a*']) {
      const e = rejected(() => check({ messages: hi }, ns(value)));
      expect([e.code, e.param]).toEqual(['invalid_request', 'x-sluice-cache-namespace']);
    }
  });

  it('given the skip hint, then neither is read nor checked', () => {
    const { choices } = check({ messages: hi }, { cache: { value: 'skip', param: 'x-sluice-cache' }, ...ttl('never'), ...ns('a b') });
    expect(choices).toEqual({ endpoint: 'chat.completions', model: 'auto', priority: 'standard', stream: false, cache: 'skip' });
  });
});

describe('checkModel', () => {
  const request = (model: string) => check({ messages: hi, model, user: 'u-9' }).choices;

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

  it('validateRequest applies the configured message limit and checks the model', async () => {
    const messages = Array.from({ length: config.ingress.maxMessages + 1 }, () => hi[0]);
    expect((await rejectedAsync(validateRequest('chat.completions', { messages }, {}, acme, config))).param).toBe('messages');
    expect((await rejectedAsync(validateRequest('embeddings', { model: 'large', input: 'x' }, {}, beta, config))).code).toBe('model_not_allowed');
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
