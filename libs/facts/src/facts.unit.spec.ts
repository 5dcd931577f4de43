import { countText, INLINE_MAX_CHARS } from '@sluice/tokens';
import { describe, expect, it } from 'vitest';
import { bodyFacts, bodyFactsAsync, DEFAULT_OUTPUT_TOKENS, estimatedTokens } from './mod.js';
import { renderFunctions } from './tools.js';

const chat = (body: Record<string, unknown>) => bodyFacts('chat.completions', { model: 'auto', ...body });
const responses = (body: Record<string, unknown>) => bodyFacts('responses', { model: 'gpt-4o', ...body });
const t = countText;

const weather = {
  name: 'get_weather',
  description: 'Current weather in a city',
  parameters: {
    type: 'object',
    properties: { city: { type: 'string', description: 'City name' }, unit: { type: 'string', enum: ['c', 'f'] } },
    required: ['city'],
  },
};
const weatherText = renderFunctions([weather]);

describe('chat.completions prompt tokens', () => {
  it("frames string messages as the limiter's estimate did: 3 to prime, 4 a message, content and name", () => {
    const f = chat({
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'What is the capital of France?', name: 'ana' },
      ],
    });
    expect(f.promptTokens).toBe(3 + 4 + t('You are terse.') + 4 + t('What is the capital of France?') + t('ana'));
  });

  it('counts text and refusal parts, an assistant refusal, and nothing for null content', () => {
    const f = chat({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'one' },
            { type: 'text', text: 'two' },
          ],
        },
        { role: 'assistant', content: [{ type: 'refusal', refusal: 'no' }] },
        { role: 'assistant', content: null, refusal: 'still no' },
      ],
    });
    expect(f.promptTokens).toBe(3 + 3 * 4 + t('one') + t('two') + t('no') + t('still no'));
  });

  it("counts an assistant's tool calls (name, arguments, framing) and a tool message's content", () => {
    const f = chat({
      messages: [
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
            { id: 'c2', type: 'custom', custom: { name: 'sql', input: 'select 1' } },
          ],
        },
        { role: 'tool', tool_call_id: 'c1', content: '{"temp":21}' },
        { role: 'assistant', content: null, function_call: { name: 'f', arguments: '{}' } },
      ],
    });
    const calls = 4 + t('get_weather') + t('{"city":"Paris"}') + 4 + t('sql') + t('select 1') + 4 + t('f') + t('{}');
    expect(f.promptTokens).toBe(3 + 3 * 4 + calls + t('{"temp":21}'));
  });

  it('counts function tools as their rendered namespace plus 9, legacy functions alike, other tools as JSON', () => {
    const base = chat({ messages: [{ role: 'user', content: 'hi' }] }).promptTokens;
    expect(chat({ messages: [{ role: 'user', content: 'hi' }], tools: [{ type: 'function', function: weather }] }).promptTokens).toBe(
      base + 9 + t(weatherText),
    );
    expect(chat({ messages: [{ role: 'user', content: 'hi' }], functions: [weather] }).promptTokens).toBe(base + 9 + t(weatherText));
    const custom = { type: 'custom', custom: { name: 'sql', description: 'Runs SQL' } };
    expect(chat({ messages: [{ role: 'user', content: 'hi' }], tools: [custom] }).promptTokens).toBe(base + t(JSON.stringify(custom)));
  });

  it("counts a json_schema response_format's schema, and nothing for json_object", () => {
    const base = chat({ messages: [{ role: 'user', content: 'hi' }] }).promptTokens;
    const json_schema = { name: 'city', schema: { type: 'object', properties: { name: { type: 'string' } } } };
    expect(chat({ messages: [{ role: 'user', content: 'hi' }], response_format: { type: 'json_schema', json_schema } }).promptTokens).toBe(
      base + t(JSON.stringify(json_schema)),
    );
    expect(chat({ messages: [{ role: 'user', content: 'hi' }], response_format: { type: 'json_object' } }).promptTokens).toBe(base);
  });

  it('counts images by the tile formula, audio by duration, files by size, and tallies images and audio', () => {
    const f = chat({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'image_url', image_url: { url: 'https://example.com/a.png', detail: 'low' } },
            { type: 'image_url', image_url: { url: 'https://example.com/b.png' } },
            { type: 'input_audio', input_audio: { data: Buffer.alloc(8_000).toString('base64'), format: 'mp3' } },
            { type: 'file', file: { file_data: Buffer.alloc(3_000).toString('base64'), filename: 'a.pdf' } },
          ],
        },
      ],
    });
    expect(f).toMatchObject({ images: 2, audio: 1 });
    // 85 (low) + 1445 (unknown size at high) + 20 (2 s at the 32 kbps fallback) + 1000 (3 kB) + filename
    expect(f.promptTokens).toBe(3 + 4 + 85 + 1445 + 20 + 1000 + t('a.pdf'));
  });

  it('counts an unknown part, or a known one without its field, as its JSON text', () => {
    const odd = { type: 'video', video: { url: 'x' } };
    const broken = { type: 'text', text: 42 };
    const byRef = { type: 'file', file: { file_id: 'file-1' } };
    const f = chat({ messages: [{ role: 'user', content: [odd, broken, byRef] }] });
    expect(f.promptTokens).toBe(3 + 4 + t(JSON.stringify(odd)) + t(JSON.stringify(broken)) + t(JSON.stringify(byRef.file)));
  });

  it('never throws on bad shapes: skips what is not an object', () => {
    for (const body of [
      {},
      { messages: 'hi' },
      { messages: [null, 1, 'x', [], { role: 'user' }] },
      { messages: [{ role: 'user', content: [null, 1, 'x', { type: 'image_url' }] }], tools: 'x', functions: [1], response_format: 'json' },
      { messages: [{ role: 'assistant', content: 5, tool_calls: [1, { type: 'function' }], function_call: 'x' }] },
      {
        messages: [],
        tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { a: 1, b: { type: 'array' } }, required: 'a' } } }],
      },
    ]) {
      expect(() => chat(body)).not.toThrow();
    }
  });
});

describe('output caps and choices', () => {
  it('takes max_completion_tokens over max_tokens, undefined when unset, and n for choices', () => {
    const messages = [{ role: 'user', content: 'hi' }];
    expect(chat({ messages, max_completion_tokens: 50, max_tokens: 10, n: 3 })).toMatchObject({ maxOutputTokens: 50, choices: 3 });
    expect(chat({ messages, max_tokens: 10 })).toMatchObject({ maxOutputTokens: 10, choices: 1 });
    expect(chat({ messages, max_tokens: null, n: 0 })).toMatchObject({ maxOutputTokens: undefined, choices: 1 });
    expect(responses({ input: 'hi', max_output_tokens: 70 })).toMatchObject({ maxOutputTokens: 70, choices: 1 });
    expect(responses({ input: 'hi' }).maxOutputTokens).toBeUndefined();
    expect(bodyFacts('embeddings', { input: 'hi' })).toMatchObject({ maxOutputTokens: 0, choices: 1 });
  });

  it('estimates prompt plus each choice at its cap, or at the default allowance', () => {
    expect(DEFAULT_OUTPUT_TOKENS).toBe(256);
    expect(estimatedTokens({ promptTokens: 100, maxOutputTokens: undefined, choices: 2 })).toBe(612);
    expect(estimatedTokens({ promptTokens: 100, maxOutputTokens: 10, choices: 3 })).toBe(130);
    expect(estimatedTokens(bodyFacts('embeddings', { input: [1, 2, 3] }))).toBe(3);
  });
});

describe('responses prompt tokens', () => {
  it('frames instructions and a string input as two messages', () => {
    expect(responses({ input: 'hello world' }).promptTokens).toBe(3 + 4 + t('hello world'));
    expect(responses({ instructions: 'Be terse.', input: 'hello world' }).promptTokens).toBe(3 + 4 + t('Be terse.') + 4 + t('hello world'));
  });

  it('counts message items, function calls and their outputs, and other items as JSON', () => {
    const reasoning = { type: 'reasoning', id: 'r1', summary: [{ type: 'summary_text', text: 'thought' }] };
    const f = responses({
      input: [
        {
          role: 'user',
          content: [
            { type: 'input_text', text: 'weather?' },
            { type: 'input_image', image_url: 'https://x/y.png', detail: 'low' },
          ],
        },
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'checking', annotations: [] }] },
        reasoning,
        { type: 'function_call', call_id: 'c1', name: 'get_weather', arguments: '{"city":"Paris"}' },
        { type: 'function_call_output', call_id: 'c1', output: '21C' },
        { type: 'function_call_output', call_id: 'c2', output: [{ type: 'input_text', text: 'ok' }] },
        'not an item',
      ],
    });
    const calls = 4 + t('get_weather') + t('{"city":"Paris"}');
    expect(f.promptTokens).toBe(3 + 6 * 4 + t('weather?') + 85 + t('checking') + t(JSON.stringify(reasoning)) + calls + t('21C') + t('ok'));
    expect(f).toMatchObject({ images: 1, audio: 0 });
  });

  it('counts flat function tools as rendered, other tools as JSON, and a json_schema text format', () => {
    const base = responses({ input: 'hi' }).promptTokens;
    const search = { type: 'web_search' };
    const schema = { type: 'object', properties: { a: { type: 'number' } } };
    const f = responses({
      input: 'hi',
      tools: [{ type: 'function', strict: true, ...weather }, search],
      text: { format: { type: 'json_schema', name: 'x', schema } },
    });
    expect(f.promptTokens).toBe(base + 9 + t(weatherText) + t(JSON.stringify(search)) + t(JSON.stringify(schema)));
  });

  it('never throws on bad shapes', () => {
    for (const input of [undefined, 5, [null, 1], [{ type: 'function_call' }], [{ role: 'user', content: { text: 'x' } }]]) {
      expect(() => responses({ input, tools: [1, 'x'], text: 'x', instructions: 5 })).not.toThrow();
    }
  });
});

describe('embeddings prompt tokens', () => {
  it('sums strings, token ids and arrays of token ids, with no framing', () => {
    expect(bodyFacts('embeddings', { input: 'hello world' }).promptTokens).toBe(t('hello world'));
    expect(bodyFacts('embeddings', { input: ['hello', 'world peace'] }).promptTokens).toBe(t('hello') + t('world peace'));
    expect(bodyFacts('embeddings', { input: [15339, 1917] }).promptTokens).toBe(2);
    expect(bodyFacts('embeddings', { input: [[1, 2, 3], [4]] }).promptTokens).toBe(4);
    expect(bodyFacts('embeddings', { input: [null, {}, 'a'] }).promptTokens).toBe(t('a'));
    expect(bodyFacts('embeddings', {}).promptTokens).toBe(0);
  });
});

describe('bodyFactsAsync', () => {
  it('gives what bodyFacts gives, for a body long enough to go to the worker', async () => {
    const long = 'lorem ipsum dolor '.repeat(Math.ceil(INLINE_MAX_CHARS / 9));
    const bodies = [
      [
        'chat.completions',
        {
          messages: [
            { role: 'user', content: long },
            { role: 'user', content: [{ type: 'text', text: long }] },
          ],
          tools: [{ type: 'function', function: weather }],
        },
      ],
      ['responses', { instructions: long, input: [{ role: 'user', content: long }] }],
      ['embeddings', { input: [long, long] }],
    ] as const;
    for (const [endpoint, body] of bodies) {
      expect(await bodyFactsAsync(endpoint, body)).toEqual(bodyFacts(endpoint, body));
    }
  });
});
