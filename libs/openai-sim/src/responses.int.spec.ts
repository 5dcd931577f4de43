import { encode } from 'gpt-tokenizer';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Sim, startSim } from './mod.js';
import { countPromptTokens } from './tokens.js';

let sim: Sim;
let client: OpenAI;

beforeAll(async () => {
  sim = await startSim({ port: 0, contextWindows: { 'gpt-4o': 60 } });
  client = new OpenAI({ baseURL: sim.url, apiKey: 'x', maxRetries: 0 });
});
afterAll(() => sim.close());
beforeEach(() => {
  sim.reset();
  sim.setFaults({ errorRate: 0, requestsPerMinute: null });
});

const weather: OpenAI.Responses.FunctionTool = {
  type: 'function',
  name: 'get_weather',
  strict: true,
  parameters: {
    type: 'object',
    properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
    required: ['city', 'unit'],
    additionalProperties: false,
  },
};

describe('POST /v1/responses with the openai SDK', () => {
  it('answers a whole response with a message, exact usage, and no output_text on the wire', async () => {
    const input = 'What is the capital of France?';
    const { data: r, response } = await client.responses.create({ model: 'gpt-4o-mini', input, instructions: 'Answer briefly.' }).withResponse();
    expect(r.id).toMatch(/^resp_[0-9a-f]{48}$/);
    expect(r).toMatchObject({ object: 'response', status: 'completed', model: 'gpt-4o-mini', instructions: 'Answer briefly.', error: null });
    expect(response.headers.get('x-request-id')).toMatch(/^req_/);
    const item = r.output[0];
    if (item?.type !== 'message') throw new Error('expected a message');
    expect(item.content[0]).toMatchObject({ type: 'output_text', annotations: [] });
    expect(r.output_text).toMatch(/^Echo: What is the capital of France/);
    const prompt = countPromptTokens([
      { role: 'system', content: 'Answer briefly.' },
      { role: 'user', content: input },
    ]);
    expect(r.usage).toEqual({
      input_tokens: prompt,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: encode(r.output_text).length,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: prompt + encode(r.output_text).length,
    });
    expect(sim.stats()).toMatchObject({ requests: 1, completions: 1, responses: 1, promptTokens: prompt, completionTokens: r.usage?.output_tokens });

    // output_text is the SDK's convenience: the wire has the output items only.
    const raw = (await (await fetch(`${sim.url}/responses`, { method: 'POST', body: JSON.stringify({ model: 'gpt-4o-mini', input }) })).json()) as Record<
      string,
      unknown
    >;
    expect('output_text' in raw).toBe(false);
    expect(raw.output).toMatchObject([{ type: 'message', content: [{ text: r.output_text }] }]);
  });

  it('streams the same answer as typed events in order, ending with the whole response', async () => {
    const input = 'Tell me about the rivers of Europe in some detail';
    const whole = await client.responses.create({ model: 'gpt-4o-mini', input });
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const e of await client.responses.create({ model: 'gpt-4o-mini', input, stream: true })) events.push(e);
    const types = [...new Set(events.map((e) => e.type))];
    expect(types).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    let text = '';
    for (const e of events) if (e.type === 'response.output_text.delta') text += e.delta;
    expect(text).toBe(whole.output_text);
    const last = events.at(-1);
    if (last?.type !== 'response.completed') throw new Error('expected response.completed last');
    expect(last.response.usage).toEqual(whole.usage);
    expect(sim.stats()).toMatchObject({ completions: 2, responses: 2 });
  });

  it("calls a function tool through the SDK's stream helper, then answers the function output as text", async () => {
    const stream = client.responses.stream({ model: 'gpt-4o-mini', input: 'Weather in Paris today?', tools: [weather] });
    const argDeltas: string[] = [];
    stream.on('response.function_call_arguments.delta', (e) => argDeltas.push(e.delta));
    const final = await stream.finalResponse();
    const call = final.output[0];
    if (call?.type !== 'function_call') throw new Error('expected a function call');
    expect(call).toMatchObject({ name: 'get_weather', status: 'completed' });
    expect(call.call_id).toMatch(/^call_/);
    expect(JSON.parse(call.arguments)).toEqual({ city: 'Weather', unit: 'celsius' });
    expect(argDeltas.join('')).toBe(call.arguments);
    expect(final.usage?.output_tokens).toBe(encode(call.arguments).length);

    const after = await client.responses.create({
      model: 'gpt-4o-mini',
      previous_response_id: final.id,
      tools: [weather],
      input: [{ type: 'function_call_output', call_id: call.call_id, output: '{"temp": 21}' }],
    });
    expect(after.previous_response_id).toBe(final.id);
    expect(after.output[0]?.type).toBe('message');
    expect(after.output_text).toMatch(/^Echo: Weather in Paris today/);
  });

  it('answers text.format json_schema with JSON valid against the schema', async () => {
    const r = await client.responses.create({
      model: 'gpt-4o-mini',
      input: 'Describe the Seine river',
      text: {
        format: {
          type: 'json_schema',
          name: 'river',
          strict: true,
          schema: { type: 'object', properties: { name: { type: 'string' }, length_km: { type: 'integer', minimum: 10 } }, required: ['name', 'length_km'] },
        },
      },
    });
    expect(JSON.parse(r.output_text)).toEqual({ name: 'Describe', length_km: 10 });
    expect(r.text?.format).toMatchObject({ type: 'json_schema', name: 'river' });
  });

  it('continues from previous_response_id, counting the earlier turns, and rejects ids it does not have', async () => {
    const first = await client.responses.create({ model: 'gpt-4o-mini', input: 'Name a river', metadata: { run: 'a' } });
    expect(first.metadata).toEqual({ run: 'a' });
    const second = await client.responses.create({ model: 'gpt-4o-mini', input: 'And a lake?', previous_response_id: first.id });
    expect(second.usage?.input_tokens).toBe(
      countPromptTokens([
        { role: 'user', content: 'Name a river' },
        { role: 'assistant', content: first.output_text },
        { role: 'user', content: 'And a lake?' },
      ]),
    );

    const unstored = await client.responses.create({ model: 'gpt-4o-mini', input: 'Forget me', store: false });
    for (const id of ['resp_unknown', unstored.id]) {
      const err = await client.responses.create({ model: 'gpt-4o-mini', input: 'x', previous_response_id: id }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect(err).toMatchObject({ status: 400, code: 'previous_response_not_found', param: 'previous_response_id' });
    }
    expect(sim.stats()).toMatchObject({ responses: 3, errors: 2 });
  });

  it('is cut to max_output_tokens with status incomplete', async () => {
    const r = await client.responses.create({ model: 'gpt-4o-mini', input: 'Tell me about the rivers of Europe in some detail', max_output_tokens: 16 });
    expect(r).toMatchObject({ status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, max_output_tokens: 16 });
    expect(r.usage?.output_tokens).toBe(16);
  });
});

describe('POST /v1/responses under the shared machinery', () => {
  it('answers context_length_exceeded, injected 500s and 429s as chat does', async () => {
    const long = await client.responses.create({ model: 'gpt-4o', input: 'word '.repeat(80) }).catch((e: unknown) => e);
    expect(long).toMatchObject({ status: 400, code: 'context_length_exceeded', param: 'input' });

    sim.setFaults({ errorRate: 1 });
    const failed = await client.responses.create({ model: 'gpt-4o-mini', input: 'hi' }).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(OpenAI.InternalServerError);
    sim.setFaults({ errorRate: 0, requestsPerMinute: 1 });
    await client.responses.create({ model: 'gpt-4o-mini', input: 'hi' });
    const throttled = await client.responses.create({ model: 'gpt-4o-mini', input: 'hi' }).catch((e: unknown) => e);
    expect(throttled).toBeInstanceOf(OpenAI.RateLimitError);
    expect(sim.stats()).toMatchObject({ requests: 4, errors: 2, throttled: 1, completions: 1, responses: 1 });
  });

  it('replays a response under the same Idempotency-Key, and tells another endpoint apart', async () => {
    const body = { model: 'gpt-4o-mini', input: 'Once only' };
    const headers = { 'idempotency-key': 'resp-key-1' };
    const a = await client.responses.create(body, { headers });
    const { data: b, response } = await client.responses.create(body, { headers }).withResponse();
    expect(b.id).toBe(a.id);
    expect(response.headers.get('idempotent-replayed')).toBe('true');
    expect(sim.stats()).toMatchObject({ completions: 1, responses: 1, replays: 1 });
    const chat = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Once only' }] }, { headers })
      .catch((e: unknown) => e);
    expect(chat).toMatchObject({ status: 422, code: 'idempotency_key_reused' });
  });
});
