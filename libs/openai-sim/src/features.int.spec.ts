import { encode } from 'gpt-tokenizer';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { countPromptTokens } from './tokens.js';
import { type Sim, startSim } from './mod.js';

let sim: Sim;
let client: OpenAI;

beforeAll(async () => {
  sim = await startSim({ port: 0, contextWindows: { 'gpt-4o': 100 } });
  client = new OpenAI({ baseURL: sim.url, apiKey: 'x', maxRetries: 0 });
});
afterAll(() => sim.close());
beforeEach(() => sim.reset());

const messages = [{ role: 'user' as const, content: 'What is the weather in Paris today?' }];
const tools: OpenAI.ChatCompletionTool[] = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Weather for a city',
      parameters: {
        type: 'object',
        properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] }, days: { type: 'integer', minimum: 1 } },
        required: ['city', 'unit', 'days'],
        additionalProperties: false,
      },
    },
  },
];

describe('OpenAI SDK against the new simulator features', () => {
  it('gets a whole tool call, then a text answer after the tool result', async () => {
    const r = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, tools });
    const choice = r.choices[0];
    expect(choice?.finish_reason).toBe('tool_calls');
    expect(choice?.message.content).toBeNull();
    const call = choice?.message.tool_calls?.[0];
    if (call?.type !== 'function') throw new Error('expected a function tool call');
    expect(call.id).toMatch(/^call_/);
    expect(call.function.name).toBe('get_weather');
    const args = JSON.parse(call.function.arguments) as Record<string, unknown>;
    expect(args).toEqual({ city: 'What', unit: 'celsius', days: 1 });
    expect(r.usage?.completion_tokens).toBe(encode(call.function.arguments).length);
    expect(r.usage?.prompt_tokens).toBe(countPromptTokens(messages) + encode(JSON.stringify(tools)).length);

    const after = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      tools,
      messages: [...messages, choice!.message, { role: 'tool', tool_call_id: call.id, content: '{"temp": 21}' }],
    });
    expect(after.choices[0]?.finish_reason).toBe('stop');
    expect(after.choices[0]?.message.content).toMatch(/^Echo: What is the weather/);
    expect(sim.stats()).toMatchObject({ completions: 2 });
  });

  it('streams a tool call that the SDK stream helper assembles', async () => {
    const whole = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, tools });
    const stream = client.chat.completions.stream({ model: 'gpt-4o-mini', messages, tools, stream_options: { include_usage: true } });
    const final = await stream.finalChatCompletion();
    const choice = final.choices[0];
    expect(choice?.finish_reason).toBe('tool_calls');
    const call = choice?.message.tool_calls?.[0];
    if (call?.type !== 'function') throw new Error('expected a function tool call');
    const wholeCall = whole.choices[0]?.message.tool_calls?.[0];
    expect(call).toMatchObject({ id: wholeCall?.id, type: 'function', function: { name: 'get_weather' } });
    expect(call.function.arguments).toBe(wholeCall?.type === 'function' ? wholeCall.function.arguments : undefined);
    expect(final.usage).toMatchObject({ completion_tokens: whole.usage?.completion_tokens, prompt_tokens: whole.usage?.prompt_tokens });
  });

  it('answers json_schema with a text that parses and has the required keys', async () => {
    const r = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages,
      response_format: {
        type: 'json_schema',
        json_schema: {
          name: 'forecast',
          strict: true,
          schema: {
            type: 'object',
            properties: { city: { type: 'string' }, temperature: { type: 'number' }, sunny: { type: 'boolean' } },
            required: ['city', 'temperature', 'sunny'],
            additionalProperties: false,
          },
        },
      },
    });
    const content = r.choices[0]?.message.content ?? '';
    const parsed = JSON.parse(content) as Record<string, unknown>;
    expect(Object.keys(parsed).sort()).toEqual(['city', 'sunny', 'temperature']);
    expect(typeof parsed.city).toBe('string');
    expect(typeof parsed.temperature).toBe('number');
    expect(parsed.sunny).toBe(true);
    expect(r.usage?.completion_tokens).toBe(encode(content).length);

    const obj = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, response_format: { type: 'json_object' } });
    expect(JSON.parse(obj.choices[0]?.message.content ?? '')).toEqual({ answer: 'What is the weather in Paris today' });
  });

  it('answers n=2 choices, whole and streamed, counting both in usage', async () => {
    const r = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, n: 2 });
    expect(r.choices.map((c) => c.index)).toEqual([0, 1]);
    const tokens = r.choices.reduce((t, c) => t + encode(c.message.content ?? '').length, 0);
    expect(r.usage?.completion_tokens).toBe(tokens);
    const stream = client.chat.completions.stream({ model: 'gpt-4o-mini', messages, n: 2 });
    const final = await stream.finalChatCompletion();
    expect(final.choices.map((c) => c.message.content)).toEqual(r.choices.map((c) => c.message.content));
    expect(sim.stats()).toMatchObject({ completions: 2, completionTokens: 2 * tokens });
  });

  it('reports the usage details, whole and streamed', async () => {
    const details = {
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
    };
    const r = await client.chat.completions.create({ model: 'gpt-4o-mini', messages });
    expect(r.usage).toMatchObject(details);
    let usage: unknown;
    const s = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, stream: true, stream_options: { include_usage: true } });
    for await (const chunk of s) if (chunk.usage) usage = chunk.usage;
    expect(usage).toMatchObject(details);
  });

  it('refuses a request beyond the context window with context_length_exceeded, not counted as served', async () => {
    const err = await client.chat.completions.create({ model: 'gpt-4o', messages, max_completion_tokens: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err).toMatchObject({ status: 400, code: 'context_length_exceeded', param: 'messages', type: 'invalid_request_error' });
    expect((err as Error).message).toMatch(/maximum context length is 100 tokens/);
    const fits = await client.chat.completions.create({ model: 'gpt-4o', messages, max_tokens: 20 });
    expect(fits.choices[0]?.finish_reason).toBe('length');
    expect(sim.stats()).toMatchObject({ requests: 2, errors: 1, completions: 1 });
  });

  it('takes the default window from contextWindow and rejects a bad one', async () => {
    const small = await startSim({ port: 0, contextWindow: 10 });
    try {
      const c = new OpenAI({ baseURL: small.url, apiKey: 'x', maxRetries: 0 });
      const err = await c.chat.completions.create({ model: 'gpt-4o-mini', messages }).catch((e: unknown) => e);
      expect(err).toMatchObject({ status: 400, code: 'context_length_exceeded' });
      expect((err as Error).message).toMatch(/However, your messages resulted in \d+ tokens\. Please reduce the length of the messages\./);
    } finally {
      await small.close();
    }
    await expect(startSim({ port: 0, contextWindows: { 'gpt-4o': 0 } })).rejects.toThrow(RangeError);
  });
});

describe('logprobs through the SDK', () => {
  it('gives one entry per completion token whole, and the same entries assembled from the stream', async () => {
    const whole = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, logprobs: true, top_logprobs: 2 });
    const content = whole.choices[0]?.logprobs?.content ?? [];
    expect(content.length).toBe(whole.usage?.completion_tokens);
    expect(content.map((e) => e.token).join('')).toBe(whole.choices[0]?.message.content);
    expect(content[0]?.top_logprobs.map((t) => t.token)[0]).toBe(content[0]?.token);

    const final = await client.chat.completions.stream({ model: 'gpt-4o-mini', messages, logprobs: true, top_logprobs: 2 }).finalChatCompletion();
    expect(final.choices[0]?.logprobs?.content).toEqual(content);
    const plain = await client.chat.completions.create({ model: 'gpt-4o-mini', messages });
    expect(plain.choices[0]?.logprobs).toBeNull();
  });
});
