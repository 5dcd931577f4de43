import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { cacheKey, type Endpoint } from './mod.js';
import { canonicalJson } from './key.js';

const base = {
  model: 'auto',
  messages: [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'What is the capital of France?' },
  ],
  temperature: 0,
};
const key = (body: Record<string, unknown>, endpoint: Endpoint = 'chat.completions', tenant = 'acme') => cacheKey(tenant, endpoint, body);
const user = (content: unknown) => ({ ...base, messages: [{ role: 'user', content }] });

/** The key by its definition: JSON of a copy with keys sorted at every depth (JSON.stringify drops undefined). */
function byDefinition(tenant: string, endpoint: Endpoint, body: Record<string, unknown>): string {
  const sorted = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sorted)
      : v !== null && typeof v === 'object'
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, sorted((v as Record<string, unknown>)[k])]),
          )
        : v;
  return `${tenant}.${createHash('sha256')
    .update(JSON.stringify(sorted({ tenant, endpoint, body })), 'utf8')
    .digest('hex')}`;
}

describe('cacheKey splits on every field that can change the answer', () => {
  const tool = { type: 'function', function: { name: 'f', parameters: { type: 'object', properties: {} } } };
  const splits: [string, Record<string, unknown>][] = [
    ['model', { model: 'gpt-4o' }],
    ['tools', { tools: [tool] }],
    ['tool_choice', { tools: [tool], tool_choice: 'required' }],
    ['parallel_tool_calls', { parallel_tool_calls: false }],
    ['response_format', { response_format: { type: 'json_object' } }],
    ['n', { n: 2 }],
    ['logprobs', { logprobs: true }],
    ['top_logprobs', { logprobs: true, top_logprobs: 3 }],
    ['logit_bias', { logit_bias: { '1234': -100 } }],
    ['seed', { seed: 7 }],
    ['stop', { stop: ['\n'] }],
    ['max_completion_tokens', { max_completion_tokens: 10 }],
    ['max_tokens', { max_tokens: 10 }],
    ['reasoning_effort', { reasoning_effort: 'high' }],
    ['temperature', { temperature: 1 }],
    ['top_p', { top_p: 0.5 }],
    ['presence_penalty', { presence_penalty: 1 }],
    ['frequency_penalty', { frequency_penalty: 1 }],
    ['service_tier', { service_tier: 'flex' }],
    ['modalities and audio', { modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'wav' } }],
    ['prediction', { prediction: { type: 'content', content: 'x' } }],
    ['verbosity', { verbosity: 'low' }],
    ['web_search_options', { web_search_options: {} }],
  ];
  for (const [name, change] of splits) {
    it(name, () => expect(key({ ...base, ...change })).not.toBe(key(base)));
  }

  it("messages' whitespace, kept exactly as sent", () => {
    const indented = key(user('def f():\n    return 1'));
    expect(key(user('def f():\n  return 1'))).not.toBe(indented);
    expect(key(user(' def f():\n    return 1'))).not.toBe(indented);
    expect(key(user('def f():\n    return 1 '))).not.toBe(indented);
  });

  it("an image's detail and a part's order", () => {
    const image = (detail: string) => ({ type: 'image_url', image_url: { url: 'https://x/y.png', detail } });
    expect(key(user([image('low')]))).not.toBe(key(user([image('high')])));
    expect(key(user([{ type: 'text', text: 'a' }, image('low')]))).not.toBe(key(user([image('low'), { type: 'text', text: 'a' }])));
  });

  it('a message name, role or order', () => {
    expect(key(user('hi'))).not.toBe(key({ ...base, messages: [{ role: 'user', content: 'hi', name: 'ana' }] }));
    expect(key(user('hi'))).not.toBe(key({ ...base, messages: [{ role: 'developer', content: 'hi' }] }));
    expect(key({ ...base, messages: [...base.messages].reverse() })).not.toBe(key(base));
  });

  it('the tenant and the endpoint', () => {
    expect(key(base, 'chat.completions', 'other')).not.toBe(key(base));
    expect(key(base, 'chat.completions', 'other').startsWith('other.')).toBe(true);
    const input = { model: 'text-embedding-3-small', input: 'hi' };
    expect(key(input, 'embeddings')).not.toBe(key(input, 'responses'));
  });

  it('Responses fields: instructions, input, previous_response_id, reasoning, text, include, background', () => {
    const r = { model: 'gpt-4o', input: 'hi' };
    for (const change of [
      { instructions: 'Be terse.' },
      { input: 'hi ' },
      { previous_response_id: 'resp_1' },
      { reasoning: { effort: 'low' } },
      { text: { format: { type: 'json_object' } } },
      { include: ['reasoning.encrypted_content'] },
      { max_output_tokens: 10 },
      { truncation: 'auto' },
    ]) {
      expect(key({ ...r, ...change }, 'responses')).not.toBe(key(r, 'responses'));
    }
  });

  it('Embeddings fields: input, dimensions, encoding_format', () => {
    const e = { model: 'text-embedding-3-small', input: ['a', 'b'] };
    for (const change of [{ input: ['b', 'a'] }, { dimensions: 256 }, { encoding_format: 'base64' }]) {
      expect(key({ ...e, ...change }, 'embeddings')).not.toBe(key(e, 'embeddings'));
    }
  });
});

describe('cacheKey does not split on what cannot change the answer', () => {
  const same: [string, Record<string, unknown>][] = [
    ['stream', { stream: true }],
    ['stream_options', { stream: true, stream_options: { include_usage: true } }],
    ['user', { user: 'u-42' }],
    ['safety_identifier', { safety_identifier: 'u-42' }],
    ['store', { store: true }],
    ['metadata', { metadata: { run: '7' } }],
    ['prompt_cache_key', { prompt_cache_key: 'app-1' }],
    ["Sluice's feature and priority hints", { feature: 'search', priority: 'interactive' }],
    ['a field left undefined', { seed: undefined }],
  ];
  for (const [name, change] of same) {
    it(name, () => expect(key({ ...base, ...change })).toBe(key(base)));
  }

  it('key order, at every depth', () => {
    const reordered = { temperature: 0, messages: base.messages.map((m) => ({ content: m.content, role: m.role })), model: 'auto' };
    expect(key(reordered)).toBe(key(base));
    const a = { ...base, tools: [{ type: 'function', function: { name: 'f', description: 'd' } }] };
    const b = { ...base, tools: [{ function: { description: 'd', name: 'f' }, type: 'function' }] };
    expect(key(a)).toBe(key(b));
  });

  it('the same key however a number is written in the JSON text', () => {
    expect(key(JSON.parse('{"model":"auto","temperature":1.0,"messages":[]}'))).toBe(key(JSON.parse('{"model":"auto","temperature":1,"messages":[]}')));
  });
});

describe('cacheKey and a cache namespace', () => {
  it('splits on the namespace: two namespaces, two keys, neither the key without one', () => {
    const a = cacheKey('acme', 'chat.completions', base, 'docs-v1');
    const b = cacheKey('acme', 'chat.completions', base, 'docs-v2');
    expect(a).not.toBe(b);
    expect(a).not.toBe(key(base));
    expect(a).toBe(cacheKey('acme', 'chat.completions', { ...base, stream: true }, 'docs-v1'));
    expect(a.startsWith('acme.')).toBe(true);
  });

  it('keeps the keys of requests without a namespace exactly as they were', () => {
    // the material before namespaces: { tenant, endpoint, body }, so stored entries stay valid
    expect(key(base)).toBe(byDefinition('acme', 'chat.completions', base));
    expect(cacheKey('acme', 'chat.completions', base, undefined)).toBe(key(base));
  });

  it('cannot be forged by a body field of the same name', () => {
    expect(cacheKey('acme', 'chat.completions', base, 'n1')).not.toBe(key({ ...base, namespace: 'n1' }));
  });
});

describe('cacheKey by its definition', () => {
  it('equals the canonical JSON of the whole material, escapes and nested values included', () => {
    const odd = '"quotes" \\ back\u0000slash \n\t new\u2028lines 😀 \ud800';
    const bodies = [
      base,
      {
        ...base,
        messages: [{ role: 'user', content: [{ type: 'text', text: odd }], name: 'ana "a"' }],
        stop: ['a', '"'],
        'odd "key"': [1, null, { z: 1, a: [] }],
      },
      { model: 'm"x', input: [[1, 2], [3]] },
    ];
    for (const body of bodies) expect(cacheKey('t"1', 'chat.completions', body)).toBe(byDefinition('t"1', 'chat.completions', body));
  });

  it('keys 30,000 tiny messages the same way, and quickly', () => {
    const body = { model: 'auto', messages: Array.from({ length: 30_000 }, (_, i) => ({ role: 'user', content: ` m ${i} ` })) };
    const started = performance.now();
    const k = key(body);
    // ~20 ms on a loaded two-core machine; a walk that went quadratic would take minutes
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(k).toBe(byDefinition('acme', 'chat.completions', body));
  });

  it('sorts an object of many keys, and nests as deep as a body can without throwing', () => {
    const many = Object.fromEntries(Array.from({ length: 5_000 }, (_, i) => [`k${(i * 7919) % 5_000}`, i]));
    expect(key({ ...base, many })).toBe(byDefinition('acme', 'chat.completions', { ...base, many }));
    let deep: unknown = 'x';
    for (let i = 0; i < 100_000; i++) deep = i % 2 ? [deep] : { d: deep };
    // compared as a boolean: a failing toBe would print a megabyte
    expect(canonicalJson(deep) === `${'[{"d":'.repeat(50_000)}"x"${'}]'.repeat(50_000)}`).toBe(true);
  });
});
