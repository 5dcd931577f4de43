import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '@sluice/contracts';
import { thrown } from '@sluice/contracts/testing';
import { cacheKey } from '@sluice/facts';
import { RequestRejected } from './rejection.js';
import { checkBody, validateRequest } from './validate.js';

const rejected = (fn: () => unknown) => thrown(fn, RequestRejected);
const config = parseConfig(JSON.parse(readFileSync(new URL('./fixtures/config.json', import.meta.url), 'utf8')));
const acme = config.tenants.find((t) => t.id === 'acme')!;
const limits = { maxMessages: 3 };

describe('checkBody: responses', () => {
  const check = (body: unknown) => checkBody('responses', body, {}, limits);

  it('given a string input, then the defaults, and the body kept whole', () => {
    const body = { input: 'hi', reasoning: { effort: 'low' }, text: { format: { type: 'json_object' } }, store: false };
    const { choices, body: kept, includeUsage } = check(body);
    expect(choices).toEqual({ endpoint: 'responses', model: 'auto', priority: 'standard', stream: false, cache: 'default' });
    expect(kept).toBe(body);
    expect(includeUsage).toBe(false);
  });

  it('given every field it checks, then it reads the choices and passes the rest', () => {
    const body = {
      model: 'small',
      input: [
        { role: 'user', content: [{ type: 'input_text', text: 'hi' }] },
        { type: 'function_call_output', call_id: 'c1', output: '{}' },
      ],
      instructions: '',
      stream: true,
      max_output_tokens: 100,
      tools: [{ type: 'function', name: 'get_weather', parameters: {} }, { type: 'web_search' }],
      previous_response_id: 'resp_123',
      user: 'u-2',
      metadata: { a: 'b' },
    };
    const before = structuredClone(body);
    const { choices } = check(body);
    expect(choices).toMatchObject({ model: 'small', stream: true, user: 'u-2' });
    expect(body).toEqual(before);
  });

  it.each([
    ['input missing', {}, 'input'],
    ['input a number', { input: 3 }, 'input'],
    ['input empty', { input: [] }, 'input'],
    ['input over maxMessages', { input: [{}, {}, {}, {}] }, 'input'],
    ['an input item a string', { input: ['hi'] }, 'input[0]'],
    ['instructions an array', { input: 'x', instructions: ['a'] }, 'instructions'],
    ['stream a string', { input: 'x', stream: 'yes' }, 'stream'],
    ['max_output_tokens zero', { input: 'x', max_output_tokens: 0 }, 'max_output_tokens'],
    ['tools an object', { input: 'x', tools: {} }, 'tools'],
    ['a function tool with a bad name', { input: 'x', tools: [{ type: 'function', name: 'a.b' }] }, 'tools[0].name'],
    ['previous_response_id a number', { input: 'x', previous_response_id: 5 }, 'previous_response_id'],
    ['user empty', { input: 'x', user: '' }, 'user'],
    ['metadata value a number', { input: 'x', metadata: { a: 1 } }, 'metadata.a'],
    ['model empty', { input: 'x', model: '' }, 'model'],
  ])('given %s, then invalid_request naming %s', (_name, body, param) => {
    const r = rejected(() => check(body));
    expect([r.code, r.status, r.param]).toEqual(['invalid_request', 400, param]);
  });
});

describe('checkBody: embeddings', () => {
  const check = (body: unknown) => checkBody('embeddings', body, {}, limits);

  it.each([
    ['a string', 'hello'],
    ['strings', ['a', 'b']],
    ['tokens', [1, 2, 3]],
    ['token arrays', [[1, 2], [3]]],
    ['2048 strings', Array(2048).fill('x')],
  ])('given %s as input, then it passes, never streamed', (_name, input) => {
    const body = { model: 'small', input, encoding_format: 'base64', dimensions: 256, user: 'u', stream: true };
    const { choices, body: kept } = check(body);
    expect(choices).toMatchObject({ endpoint: 'embeddings', model: 'small', stream: false, user: 'u' });
    expect(kept).toBe(body);
  });

  it.each([
    ['input missing', { model: 'small' }, 'input'],
    ['model missing', { input: 'x' }, 'model'],
    ['model auto', { model: 'auto', input: 'x' }, 'model'],
    ['input empty', { model: 'small', input: '' }, 'input'],
    ['input an empty array', { model: 'small', input: [] }, 'input'],
    ['an empty string in the array', { model: 'small', input: ['a', ''] }, 'input'],
    ['mixed kinds', { model: 'small', input: ['a', 1] }, 'input'],
    ['a negative token', { model: 'small', input: [1, -2] }, 'input'],
    ['an empty token array', { model: 'small', input: [[1], []] }, 'input'],
    ['an object', { model: 'small', input: { text: 'x' } }, 'input'],
    ['2049 entries', { model: 'small', input: Array(2049).fill('x') }, 'input'],
    ['encoding_format unknown', { model: 'small', input: 'x', encoding_format: 'int8' }, 'encoding_format'],
    ['dimensions zero', { model: 'small', input: 'x', dimensions: 0 }, 'dimensions'],
    ['dimensions fractional', { model: 'small', input: 'x', dimensions: 1.5 }, 'dimensions'],
    ['user a number', { model: 'small', input: 'x', user: 1 }, 'user'],
  ])('given %s, then invalid_request naming %s', (_name, body, param) => {
    const r = rejected(() => check(body));
    expect([r.code, r.status, r.param]).toEqual(['invalid_request', 400, param]);
  });
});

describe('validateRequest: the facts', () => {
  it('counts the facts once and keys the cache by every field that changes the answer', async () => {
    const body = { model: 'small', messages: [{ role: 'user', content: 'hello there' }], n: 2, max_completion_tokens: 50 };
    const { request, body: kept } = await validateRequest('chat.completions', body, {}, acme, config);
    expect(kept).toBe(body);
    expect(request).toMatchObject({
      endpoint: 'chat.completions',
      model: 'small',
      choices: 2,
      maxOutputTokens: 50,
      cacheKey: cacheKey('acme', 'chat.completions', body),
    });
    expect(request.promptTokens).toBeGreaterThan(0);
    const json = await validateRequest('chat.completions', { ...body, response_format: { type: 'json_object' } }, {}, acme, config);
    expect(json.request.cacheKey).not.toBe(request.cacheKey);
  });

  it('sets no cache key when the cache hint is skip, and none of the output cap when the client set none', async () => {
    const { request } = await validateRequest('responses', { input: 'hi' }, { cache: { value: 'skip', param: 'x-sluice-cache' } }, acme, config);
    expect(request.cache).toBe('skip');
    expect(request).not.toHaveProperty('cacheKey');
    expect(request).not.toHaveProperty('maxOutputTokens');
    expect(request.choices).toBe(1);
  });
});
