import { describe, expect, it } from 'vitest';
import { chatBody } from '@sluice/contracts/testing';
import { outgoing, variantOf } from './outgoing.js';

describe('outgoing', () => {
  it('given a body Sluice decided nothing about, then it is sent as it came, unknown fields included', () => {
    const body = chatBody('hi', 'gpt-4o-mini', { tools: [{ type: 'function', function: { name: 'f' } }], logit_bias: { 1: 2 }, a_field_from_next_month: true });
    const out = outgoing('chat.completions', body, { model: 'gpt-4o-mini', stream: false });
    expect(out).toEqual({ path: '/chat/completions', body, stream: false, changes: [], addedUsage: false });
    expect(out.body).not.toBe(body);
  });

  it('given a routed model, then model is replaced and said so', () => {
    const out = outgoing('chat.completions', chatBody('hi', 'auto'), { model: 'gpt-4o-mini-2024-07-18', stream: false });
    expect(out.body.model).toBe('gpt-4o-mini-2024-07-18');
    expect(out.changes).toEqual(['model "auto" -> "gpt-4o-mini-2024-07-18"']);
  });

  it('given a degrade cap, then it lowers the field the client used, never raises it, and defaults to max_completion_tokens', () => {
    const d = { model: 'm1', stream: false, maxTokens: 100 };
    expect(outgoing('chat.completions', chatBody(), d).body).toMatchObject({ max_completion_tokens: 100 });
    expect(outgoing('chat.completions', chatBody(), d).body).not.toHaveProperty('max_tokens');
    const legacy = outgoing('chat.completions', chatBody('hello', 'm1', { max_tokens: 500 }), d);
    expect(legacy.body).toMatchObject({ max_tokens: 100 });
    expect(legacy.body).not.toHaveProperty('max_completion_tokens');
    expect(legacy.changes).toEqual(['max_tokens 500 -> 100 (degrade cap)']);
    expect(outgoing('chat.completions', chatBody('hello', 'm1', { max_completion_tokens: 20 }), d).changes).toEqual([]);
    expect(outgoing('responses', { model: 'm1', input: 'hi' }, d).body).toMatchObject({ max_output_tokens: 100 });
    expect(outgoing('embeddings', { model: 'm1', input: 'hi' }, d).body).toEqual({ model: 'm1', input: 'hi' });
  });

  it('given a streamed chat without include_usage, then Sluice asks for the usage chunk and keeps the other stream options', () => {
    const out = outgoing('chat.completions', chatBody('hi', 'm1', { stream: true, stream_options: { include_obfuscation: false } }), {
      model: 'm1',
      stream: true,
    });
    expect(out.body.stream_options).toEqual({ include_obfuscation: false, include_usage: true });
    expect(out).toMatchObject({ stream: true, addedUsage: true });
    const asked = outgoing('chat.completions', chatBody('hi', 'm1', { stream: true, stream_options: { include_usage: true } }), { model: 'm1', stream: true });
    expect(asked).toMatchObject({ addedUsage: false, changes: [] });
    // the Responses API reports usage in response.completed
    expect(outgoing('responses', { model: 'm1', input: 'hi', stream: true }, { model: 'm1', stream: true }).body).not.toHaveProperty('stream_options');
  });

  it("given Sluice's hint fields, then they are removed (OpenAI refuses unknown parameters)", () => {
    const out = outgoing('chat.completions', chatBody('hi', 'm1', { feature: 'search', priority: 'critical', user: 'u1' }), { model: 'm1', stream: false });
    expect(out.body).toEqual(chatBody('hi', 'm1', { user: 'u1' }));
    expect(out.changes).toEqual(["feature, priority removed (Sluice's hints)"]);
  });

  it('sends each endpoint to its path, and never streams embeddings', () => {
    expect(outgoing('responses', { model: 'm1' }, { model: 'm1', stream: true })).toMatchObject({ path: '/responses', stream: true });
    expect(outgoing('embeddings', { model: 'm1' }, { model: 'm1', stream: true })).toMatchObject({ path: '/embeddings', stream: false });
  });
});

describe('outgoing with a canary variant', () => {
  const variant = { name: 'b', system: 'Answer in one line.', params: { temperature: 0.2, top_p: 0.5, max_tokens: 64 } };

  it("given a chat without a system message, then the variant's goes first and its params are set", () => {
    const out = outgoing('chat.completions', chatBody('hi', 'm1', { temperature: 1 }), { model: 'm1', stream: false, variant });
    expect(out.body).toMatchObject({
      messages: [
        { role: 'system', content: 'Answer in one line.' },
        { role: 'user', content: 'hi' },
      ],
      temperature: 0.2,
      top_p: 0.5,
      max_completion_tokens: 64,
    });
    expect(out.changes).toEqual([
      "system message put first: the variant's (variant b)",
      'temperature 1 -> 0.2 (variant b)',
      'top_p "unset" -> 0.5 (variant b)',
      'max_completion_tokens "unset" -> 64 (variant b)',
    ]);
  });

  it("given a chat with its own system message, then the variant's replaces it, and the degrade cap still applies after", () => {
    const body = {
      model: 'm1',
      messages: [
        { role: 'system', content: 'old' },
        { role: 'user', content: 'hi' },
      ],
      max_tokens: 500,
    };
    const out = outgoing('chat.completions', body, { model: 'm1', stream: false, maxTokens: 32, variant });
    expect(out.body.messages).toEqual([
      { role: 'system', content: 'Answer in one line.' },
      { role: 'user', content: 'hi' },
    ]);
    expect(out.body).toMatchObject({ max_tokens: 32 });
    expect(body.messages[0]!.content).toBe('old');
  });

  it("given Responses, then the variant's system is the instructions; an embedding takes nothing", () => {
    expect(outgoing('responses', { model: 'm1', input: 'hi', instructions: 'x' }, { model: 'm1', stream: false, variant }).body).toMatchObject({
      instructions: 'Answer in one line.',
      max_output_tokens: 64,
    });
    expect(outgoing('embeddings', { model: 'm1', input: 'hi' }, { model: 'm1', stream: false, variant }).body).toEqual({ model: 'm1', input: 'hi' });
  });

  it('variantOf finds the settings by canary id and variant name in the live config, else nothing', () => {
    const config = {
      canaries: [
        {
          id: 'c1',
          match: {},
          baseline: 'a',
          variants: [
            { name: 'a', percent: 50 },
            { ...variant, percent: 50 },
          ],
        },
      ],
    };
    expect(variantOf(config, { canary: 'c1', name: 'b' })).toMatchObject({ system: 'Answer in one line.' });
    expect(variantOf(config, { canary: 'c2', name: 'b' })).toBeUndefined();
    expect(variantOf(config, undefined)).toBeUndefined();
  });
});
