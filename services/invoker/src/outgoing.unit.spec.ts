import { describe, expect, it } from 'vitest';
import { chatBody } from '@sluice/contracts/testing';
import { outgoing } from './outgoing.js';

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
