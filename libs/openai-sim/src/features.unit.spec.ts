import { encode } from 'gpt-tokenizer';
import { describe, expect, it } from 'vitest';
import { type ChatPlan, completionBody, GPT_4O_CONTEXT_WINDOW, planChat } from './completion.js';
import { type ApiError, isApiError } from './errors.js';
import { streamFrames } from './stream.js';
import { countPromptTokens } from './tokens.js';

const MODELS = new Set(['gpt-4o-mini', 'small']);
const messages = [{ role: 'user', content: 'What is the weather in Paris today?' }];
const weather = {
  type: 'function',
  function: {
    name: 'get_weather',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['c', 'f'] }, days: { type: 'integer' } },
      required: ['city', 'unit'],
    },
  },
};
const lookup = { type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] } } };
const plan = (extra: object, windows?: (m: string) => number): ChatPlan | ApiError => planChat({ model: 'gpt-4o-mini', messages, ...extra }, MODELS, windows);

type Body = {
  choices: {
    index: number;
    finish_reason: string;
    message: { content: string | null; tool_calls?: { id: string; type: string; function: { name: string; arguments: string } }[] };
  }[];
  usage: { completion_tokens: number };
};
const body = (p: ChatPlan): Body => completionBody(p, 'chatcmpl-x', 1) as Body;
const chunks = (p: ChatPlan): Record<string, unknown>[] =>
  streamFrames(p, 'chatcmpl-x', 1)
    .map((f) => f.text.slice(6, -2))
    .filter((f) => f !== '[DONE]')
    .map((f) => JSON.parse(f) as Record<string, unknown>);

describe('tool calls', () => {
  it('calls the first tool with arguments built from its schema', () => {
    const p = plan({ tools: [weather, lookup] }) as ChatPlan;
    const b = body(p);
    const c = b.choices[0];
    expect(c?.finish_reason).toBe('tool_calls');
    expect(c?.message.content).toBeNull();
    const call = c?.message.tool_calls?.[0];
    expect(call).toMatchObject({ type: 'function', function: { name: 'get_weather' } });
    expect(call?.id).toMatch(/^call_[0-9a-f]{24}$/);
    expect(JSON.parse(call?.function.arguments ?? '')).toEqual({ city: 'What', unit: 'c' });
    expect(b.usage.completion_tokens).toBe(encode(call?.function.arguments ?? '').length);
    expect(p.promptTokens).toBe(countPromptTokens(messages) + encode(JSON.stringify([weather, lookup])).length);
    expect(body(plan({ tools: [weather, lookup] }) as ChatPlan)).toEqual(b);
  });

  it('honours tool_choice: a named function, and none', () => {
    const named = body(plan({ tools: [weather, lookup], tool_choice: { type: 'function', function: { name: 'lookup' } } }) as ChatPlan);
    expect(named.choices[0]?.message.tool_calls?.[0]?.function.name).toBe('lookup');
    const none = body(plan({ tools: [weather], tool_choice: 'none' }) as ChatPlan);
    expect(none.choices[0]?.message.tool_calls).toBeUndefined();
    expect(none.choices[0]?.message.content).toMatch(/^Echo: What is the weather/);
    const bad = plan({ tools: [weather], tool_choice: { type: 'function', function: { name: 'nope' } } }) as ApiError;
    expect(bad.body.error.param).toBe('tool_choice');
    expect((plan({ tools: [{ type: 'function' }] }) as ApiError).body.error.param).toBe('tools[0]');
  });

  it('answers in text after a tool result', () => {
    const p = planChat(
      {
        model: 'gpt-4o-mini',
        tools: [weather],
        messages: [
          ...messages,
          { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{}' } }] },
          { role: 'tool', tool_call_id: 'call_1', content: 'sunny' },
        ],
      },
      MODELS,
    ) as ChatPlan;
    expect(p.toolCall).toBeUndefined();
    expect(p.finishReason).toBe('stop');
    expect(p.content).toMatch(/^Echo: What is the weather/);
  });

  it('streams indexed tool-call deltas, then finish_reason tool_calls', () => {
    const p = plan({ tools: [weather], stream: true }) as ChatPlan;
    const cs = chunks(p);
    const deltas = cs.map(
      (c) => (c.choices as { delta: { tool_calls?: { index: number; id?: string; function: { name?: string; arguments: string } }[] } }[])[0]?.delta,
    );
    const first = deltas[0]?.tool_calls?.[0];
    expect(first).toMatchObject({ index: 0, id: p.toolCall?.id, type: 'function', function: { name: 'get_weather', arguments: '' } });
    const args = deltas
      .slice(1)
      .map((d) => d?.tool_calls?.[0]?.function.arguments ?? '')
      .join('');
    expect(args).toBe(p.content);
    expect((cs.at(-1)?.choices as { finish_reason: string }[])[0]?.finish_reason).toBe('tool_calls');
  });

  it('cuts the arguments at max_completion_tokens with finish_reason length', () => {
    const p = plan({ tools: [weather], max_completion_tokens: 3 }) as ChatPlan;
    expect(p.finishReason).toBe('length');
    expect(p.completionTokens).toBeLessThanOrEqual(3);
    expect(p.completionTokens).toBe(encode(p.content).length);
  });
});

describe('response_format', () => {
  it('json_object gives a JSON object text', () => {
    const p = plan({ response_format: { type: 'json_object' } }) as ChatPlan;
    expect(JSON.parse(p.content)).toEqual({ answer: 'What is the weather in Paris today' });
    expect(p.completionTokens).toBe(encode(p.content).length);
  });

  it('json_schema gives a text valid against the schema', () => {
    const schema = {
      type: 'object',
      properties: { city: { type: 'string' }, temp: { type: 'number' } },
      required: ['city', 'temp'],
      additionalProperties: false,
    };
    const p = plan({ response_format: { type: 'json_schema', json_schema: { name: 'w', schema, strict: true } } }) as ChatPlan;
    expect(JSON.parse(p.content)).toEqual({ city: 'What', temp: 1 });
    expect((plan({ response_format: { type: 'json_schema', json_schema: {} } }) as ApiError).body.error.code).toBe('missing_required_parameter');
    expect((plan({ response_format: { type: 'xml' } }) as ApiError).status).toBe(400);
    expect(plan({ response_format: { type: 'text' } })).toEqual(plan({}));
  });
});

describe('n choices', () => {
  it('answers n choices, the first as for n=1, and usage counts them all', () => {
    const one = plan({}) as ChatPlan;
    const p = plan({ n: 3 }) as ChatPlan;
    const b = body(p);
    expect(b.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(b.choices[0]?.message.content).toBe(one.content);
    const total = b.choices.reduce((t, c) => t + encode(c.message.content ?? '').length, 0);
    expect(b.usage.completion_tokens).toBe(total);
    expect(p.completionTokens).toBe(total);
    expect(plan({ n: 3 })).toEqual(p);
  });

  it('streams every choice with its index', () => {
    const cs = chunks(plan({ n: 2, stream: true }) as ChatPlan);
    const indexes = new Set(cs.flatMap((c) => (c.choices as { index: number }[]).map((x) => x.index)));
    expect([...indexes]).toEqual([0, 1]);
    const finishes = cs.flatMap((c) => (c.choices as { finish_reason: string | null }[]).filter((x) => x.finish_reason !== null));
    expect(finishes).toHaveLength(2);
  });

  it('rejects n outside 1..128', () => {
    expect((plan({ n: 0 }) as ApiError).body.error.code).toBe('integer_below_min_value');
    expect((plan({ n: 129 }) as ApiError).body.error.code).toBe('integer_above_max_value');
  });
});

describe('context window', () => {
  it('refuses prompt + max tokens beyond the window with context_length_exceeded', () => {
    const p = countPromptTokens(messages);
    const window = (): number => p + 10;
    expect(isApiError(plan({ max_tokens: 10 }, window))).toBe(false);
    const e = plan({ max_completion_tokens: 11 }, window) as ApiError;
    expect(e.status).toBe(400);
    expect(e.body.error).toEqual({
      message: `This model's maximum context length is ${p + 10} tokens. However, you requested ${p + 11} tokens (${p} in the messages, 11 in the completion). Please reduce the length of the messages or completion.`,
      type: 'invalid_request_error',
      param: 'messages',
      code: 'context_length_exceeded',
    });
    const tight = (): number => p - 1;
    expect((plan({}, tight) as ApiError).body.error.message).toMatch(/However, your messages resulted in \d+ tokens/);
  });

  it('has no window unless one is configured', () => {
    const huge = planChat({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `a${'\u0301'.repeat(300_000)}` }] }, MODELS);
    expect(isApiError(huge)).toBe(false);
    expect((huge as ChatPlan).promptTokens).toBeGreaterThan(GPT_4O_CONTEXT_WINDOW);
  });

  it('cuts a reply that would run past the window', () => {
    const p = countPromptTokens(messages);
    const r = plan({}, () => p + 2) as ChatPlan;
    expect(r.completionTokens).toBeLessThanOrEqual(2);
    expect(r.finishReason).toBe('length');
  });
});
