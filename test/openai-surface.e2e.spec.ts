import { crc32, deflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { zodFunction, zodResponseFormat } from 'openai/helpers/zod';
import { ChatCompletionStream } from 'openai/lib/ChatCompletionStream';
import { z } from 'zod';
import { SluiceClient } from '@sluice/client';
import { startSim, type Sim, type SimStats } from '@sluice/openai-sim';
import { eventually } from '@sluice/bus/testing';
import { DEV_KEY, defaultConfig, startE2eStack, startRecorder, type E2eStack, type Recorder, type UpstreamCall } from './harness.js';

// Issue 9, item 11: an unchanged OpenAI SDK app, using the SDK's own features, through both doors.
// The simulator sits behind a recording proxy, so a test can also see what Sluice sent upstream.
const MODEL = 'gpt-4o-mini';
/** Served with a small context window, so a long prompt meets the upstream's own 400. */
const SMALL_MODEL = 'gpt-4.1-mini';
const SMALL_WINDOW = 200;
const EMBEDDING_MODEL = 'text-embedding-3-small';

let sim: Sim;
let upstream: Recorder;
let stack: E2eStack;
beforeAll(async () => {
  sim = await startSim({ port: 0, contextWindows: { [SMALL_MODEL]: SMALL_WINDOW } });
  upstream = await startRecorder(sim.url);
  const config = defaultConfig();
  config.models[SMALL_MODEL] = { deployments: ['primary'], fallback: [], price: { inputPerMTok: 0.4, outputPerMTok: 1.6 } };
  config.models[EMBEDDING_MODEL] = { deployments: ['primary'], fallback: [], price: { inputPerMTok: 0.02, outputPerMTok: 0 } };
  stack = await startE2eStack({ config, upstreamUrl: upstream.url });
});
afterAll(async () => {
  await stack?.close();
  await upstream?.close();
  await sim?.close();
});

const Weather = z.object({ city: z.string(), unit: z.enum(['celsius', 'fahrenheit']) });
const weatherTool: OpenAI.ChatCompletionFunctionTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The current weather in a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
      required: ['city', 'unit'],
      additionalProperties: false,
    },
  },
};
const user = (content: OpenAI.ChatCompletionUserMessageParam['content']): OpenAI.ChatCompletionUserMessageParam => ({ role: 'user', content });
const askTools = (content: string) => ({ model: MODEL, messages: [user(content)], tools: [weatherTool] });

/** The single function call of a completion's first choice. */
function onlyCall(c: OpenAI.ChatCompletion): OpenAI.ChatCompletionMessageFunctionToolCall {
  const calls = c.choices[0]?.message.tool_calls ?? [];
  expect(calls).toHaveLength(1);
  const call = calls[0]!;
  if (call.type !== 'function') throw new Error(`expected a function call, got ${call.type}`);
  return call;
}

/** The last request Sluice sent upstream whose body mentions `marker`. */
function sentUpstream(path: string, marker: string): UpstreamCall {
  const call = upstream.calls.findLast((c) => c.path === path && JSON.stringify(c.body).includes(marker));
  if (!call) throw new Error(`nothing mentioning ${JSON.stringify(marker)} was sent to ${path}`);
  return call;
}

/** A real PNG of one flat colour (8-bit RGB), so the upstream can read its size from the header. */
function flatPng(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const typed = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const out = Buffer.alloc(8 + typed.length);
    out.writeUInt32BE(data.length, 0);
    typed.copy(out, 4);
    out.writeUInt32BE(crc32(typed), 4 + typed.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  const row = Buffer.alloc(1 + width * 3, 0x5a);
  row[0] = 0; // filter: none
  const pixels = deflateSync(Buffer.concat(Array.from({ length: height }, () => row)));
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk('IHDR', header), chunk('IDAT', pixels), chunk('IEND', Buffer.alloc(0))]);
}
const dataUrl = (png: Buffer) => `data:image/png;base64,${png.toString('base64')}`;

/** The text of a Responses API `response`: its output_text parts, in order. */
const outputText = (r: OpenAI.Responses.Response) =>
  r.output.flatMap((item) => (item.type === 'message' ? item.content.flatMap((p) => (p.type === 'output_text' ? [p.text] : [])) : [])).join('');

describe('tool calling through the HTTP door', () => {
  it('completes a round trip: a call with valid arguments, the tool result, a final answer', async () => {
    const client = stack.openai();
    const question = askTools('What is the weather in Paris today?');
    const first = await client.chat.completions.create(question);
    expect(first.choices[0]?.finish_reason).toBe('tool_calls');
    expect(first.choices[0]?.message.content).toBeNull();
    const call = onlyCall(first);
    expect(call.function.name).toBe('get_weather');
    expect(() => Weather.parse(JSON.parse(call.function.arguments))).not.toThrow();

    const final = await client.chat.completions.create({
      ...question,
      messages: [
        ...question.messages,
        { role: 'assistant', content: null, tool_calls: first.choices[0]!.message.tool_calls },
        { role: 'tool', tool_call_id: call.id, content: JSON.stringify({ temperature: 21, unit: 'celsius' }) },
      ],
    });
    expect(final.choices[0]?.finish_reason).toBe('stop');
    expect(final.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(final.choices[0]?.message.tool_calls ?? []).toEqual([]);
    // the conversation reached the upstream as sent
    const sent = sentUpstream('/v1/chat/completions', call.id).body;
    expect(sent.messages[1]).toEqual({ role: 'assistant', content: null, tool_calls: first.choices[0]!.message.tool_calls });
    expect(sent.messages[2]).toMatchObject({ role: 'tool', tool_call_id: call.id });
    expect(sent.tools).toEqual([weatherTool]);
  });

  it("assembles streamed tool calls with the SDK's stream helper, as the whole answer has them", async () => {
    const client = stack.openai();
    const params = { model: MODEL, messages: [user('Weather in Rome, streamed?')], tools: [zodFunction({ name: 'get_weather', parameters: Weather })] };
    const streamed = await client.chat.completions.stream(params).finalChatCompletion();
    const call = streamed.choices[0]?.message.tool_calls?.[0];
    expect(streamed.choices[0]?.finish_reason).toBe('tool_calls');
    expect(call?.function.name).toBe('get_weather');
    expect(Weather.parse(call?.function.parsed_arguments)).toEqual(JSON.parse(call!.function.arguments));
    // the same request whole (skipping the cache, so the upstream answers it again)
    const whole = await client.chat.completions.create(params, { headers: { 'x-sluice-cache': 'skip' } });
    expect(onlyCall(whole).function).toEqual({ name: 'get_weather', arguments: call!.function.arguments });
  });

  it('runs a streamed tool loop with runTools: the call, our function, its result sent back, a final answer', async () => {
    let calledWith: z.infer<typeof Weather> | undefined;
    const runner = stack.openai().chat.completions.runTools({
      model: MODEL,
      stream: true,
      messages: [user('Weather in Lima, please?')],
      tools: [
        zodFunction({
          name: 'get_weather',
          parameters: Weather,
          function: (args) => {
            calledWith = args;
            return { temperature: 19, unit: args.unit };
          },
        }),
      ],
    });
    const answer = await runner.finalContent();
    expect(Weather.parse(calledWith)).toEqual(calledWith);
    expect(answer?.length).toBeGreaterThan(0);
    expect(runner.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant']);
  });

  it('keeps cache namespaces apart at both doors, and serves each its own entry', async () => {
    const client = stack.openai();
    const question = { model: MODEL, messages: [user('Namespaced: name a fjord')] };
    const ask = (namespace?: string) =>
      client.chat.completions.create(question, namespace ? { headers: { 'x-sluice-cache-namespace': namespace } } : {}).withResponse();
    const cacheOf = async (p: ReturnType<typeof ask>) => (await p).response.headers.get('x-sluice-cache');
    expect(await cacheOf(ask('docs-a'))).toBe('miss');
    expect(await cacheOf(ask('docs-b'))).toBe('miss');
    expect(await cacheOf(ask())).toBe('miss');
    expect(await cacheOf(ask('docs-a'))).toBe('hit');
    const nats = new SluiceClient(stack.nc, { tenant: 'dev', key: DEV_KEY, timeoutMs: 30_000 });
    const result = await nats.chat(question, { cacheNamespace: 'docs-b' });
    expect([result.cache, result.cached]).toEqual(['hit', true]);
  });

  it('replays tool calls from the cache, whole and streamed', async () => {
    const client = stack.openai();
    const question = askTools('Cached weather for Oslo?');
    const first = await client.chat.completions.create(question).withResponse();
    const again = await client.chat.completions.create(question).withResponse();
    expect(first.response.headers.get('x-sluice-cache')).toBe('miss');
    expect(again.response.headers.get('x-sluice-cache')).toBe('hit');
    expect(again.data.choices[0]?.finish_reason).toBe('tool_calls');
    expect(again.data.choices[0]?.message.tool_calls).toEqual(first.data.choices[0]?.message.tool_calls);

    // `stream` does not change the answer, so the streamed request finds the same entry
    const streamed = await client.chat.completions.create({ ...question, stream: true }).withResponse();
    expect(streamed.response.headers.get('x-sluice-cache')).toBe('hit');
    const assembled = await ChatCompletionStream.fromReadableStream(streamed.data.toReadableStream()).finalChatCompletion();
    expect(assembled.choices[0]?.finish_reason).toBe('tool_calls');
    expect(assembled.choices[0]?.message.tool_calls?.map((t) => ({ id: t.id, type: t.type, function: t.function }))).toEqual(
      first.data.choices[0]?.message.tool_calls,
    );
  });
});

describe('structured output', () => {
  it('parses a zod response format with chat.completions.parse', async () => {
    const Forecast = z.object({ city: z.string(), temperature: z.number(), sunny: z.boolean(), tags: z.array(z.string()) });
    const res = await stack.openai().chat.completions.parse({
      model: MODEL,
      messages: [user('Forecast for Bergen as structured data')],
      response_format: zodResponseFormat(Forecast, 'forecast'),
    });
    const message = res.choices[0]!.message;
    expect(message.refusal).toBeNull();
    expect(Forecast.parse(message.parsed)).toEqual(message.parsed);
    expect(message.parsed).toEqual(JSON.parse(message.content!));
    expect(sentUpstream('/v1/chat/completions', 'Forecast for Bergen').body.response_format).toMatchObject({
      type: 'json_schema',
      json_schema: { name: 'forecast', strict: true },
    });
  });
});

describe('images', () => {
  it("answers a base64 image part and counts the image's tiles in prompt_tokens", async () => {
    const client = stack.openai();
    const text = 'What colour is this picture?';
    const alone = await client.chat.completions.create({ model: MODEL, messages: [user([{ type: 'text', text }])] });
    const withImage = async (png: Buffer, detail: 'low' | 'high') =>
      client.chat.completions.create({
        model: MODEL,
        messages: [
          user([
            { type: 'text', text },
            { type: 'image_url', image_url: { url: dataUrl(png), detail } },
          ]),
        ],
      });
    // OpenAI's documented formula: `low` is 85 tokens flat; `high` fits the image in 2048x2048,
    // scales its short side to 768 and adds 170 per 512px tile: 1024x1024 -> 768x768 -> 4 tiles.
    const low = await withImage(flatPng(64, 64), 'low');
    const high = await withImage(flatPng(1024, 1024), 'high');
    expect(low.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(low.usage!.prompt_tokens - alone.usage!.prompt_tokens).toBe(85);
    expect(high.usage!.prompt_tokens - alone.usage!.prompt_tokens).toBe(85 + 4 * 170);
    const sent = sentUpstream('/v1/chat/completions', dataUrl(flatPng(64, 64))).body;
    expect(sent.messages[0].content[1]).toEqual({ type: 'image_url', image_url: { url: dataUrl(flatPng(64, 64)), detail: 'low' } });
  });
});

describe('choices, logprobs and output caps', () => {
  it('returns n choices', async () => {
    const res = await stack.openai().chat.completions.create({ model: MODEL, messages: [user('Two takes on a haiku')], n: 2 });
    expect(res.choices.map((c) => c.index)).toEqual([0, 1]);
    for (const c of res.choices) expect(c.message.content?.length).toBeGreaterThan(0);
  });

  it('returns logprobs with the asked number of alternatives', async () => {
    const res = await stack
      .openai()
      .chat.completions.create({ model: MODEL, messages: [user('Logprobs for a short answer')], logprobs: true, top_logprobs: 2 });
    const choice = res.choices[0]!;
    const tokens = choice.logprobs?.content ?? [];
    expect(tokens.length).toBeGreaterThan(0);
    for (const t of tokens) {
      expect(typeof t.token).toBe('string');
      expect(t.logprob).toBeLessThanOrEqual(0);
      expect(t.top_logprobs).toHaveLength(2);
    }
    expect(tokens.map((t) => t.token).join('')).toBe(choice.message.content);
  });

  it('passes max_completion_tokens upstream as sent, and the answer honours it', async () => {
    const res = await stack
      .openai()
      .chat.completions.create({ model: MODEL, messages: [user('Cap me at five tokens please')], n: 2, max_completion_tokens: 5 });
    for (const c of res.choices) expect(c.finish_reason).toBe('length');
    expect(res.usage!.completion_tokens).toBeLessThanOrEqual(2 * 5);
    const sent = sentUpstream('/v1/chat/completions', 'Cap me at five tokens').body;
    expect(sent.max_completion_tokens).toBe(5);
    expect(sent).not.toHaveProperty('max_tokens');
  });
});

describe('the Responses API', () => {
  it('answers responses.create whole', async () => {
    const { data, response } = await stack.openai().responses.create({ model: MODEL, input: 'Name a river in Peru' }).withResponse();
    expect(data.object).toBe('response');
    expect(data.status).toBe('completed');
    expect(data.output_text.length).toBeGreaterThan(0);
    expect(data.output_text).toBe(outputText(data));
    expect(data.usage!.input_tokens).toBeGreaterThan(0);
    expect(data.usage!.total_tokens).toBe(data.usage!.input_tokens + data.usage!.output_tokens);
    expect(response.headers.get('x-sluice-request-id')).toMatch(/^req_/);
  });

  it('streams responses.create as its events, from response.created to response.completed', async () => {
    const stream = await stack.openai().responses.create({ model: MODEL, input: 'Stream a sentence about deltas', stream: true });
    const types: string[] = [];
    let text = '';
    let completed: OpenAI.Responses.Response | undefined;
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === 'response.output_text.delta') text += event.delta;
      if (event.type === 'response.completed') completed = event.response;
    }
    expect(types[0]).toBe('response.created');
    expect(types).toContain('response.output_text.delta');
    expect(types.indexOf('response.output_text.delta')).toBeGreaterThan(0);
    expect(types.at(-1)).toBe('response.completed');
    expect(completed?.status).toBe('completed');
    expect(text.length).toBeGreaterThan(0);
    expect(text).toBe(outputText(completed!));
  });

  it('passes previous_response_id through to the upstream that stored the first response', async () => {
    const client = stack.openai();
    const first = await client.responses.create({ model: MODEL, input: 'My name is Ada.' });
    const second = await client.responses.create({ model: MODEL, input: 'What is my name?', previous_response_id: first.id });
    expect(second.status).toBe('completed');
    expect(second.previous_response_id).toBe(first.id);
    expect(sentUpstream('/v1/responses', 'What is my name?').body.previous_response_id).toBe(first.id);
  });
});

describe('embeddings and models', () => {
  it("returns the model's vectors, and a repeat from the cache", async () => {
    const client = stack.openai();
    const input = 'a lighthouse on a cliff';
    const reference = await new OpenAI({ baseURL: sim.url, apiKey: 'x', maxRetries: 0 }).embeddings.create({ model: EMBEDDING_MODEL, input });
    const first = await client.embeddings.create({ model: EMBEDDING_MODEL, input }).withResponse();
    const vector = first.data.data[0]!.embedding;
    expect(vector).toHaveLength(reference.data[0]!.embedding.length);
    expect(vector.every((x) => typeof x === 'number')).toBe(true);
    expect(vector).toEqual(reference.data[0]!.embedding);
    expect(first.data.usage.prompt_tokens).toBe(reference.usage.prompt_tokens);
    expect(first.response.headers.get('x-sluice-cache')).toBe('miss');

    const again = await client.embeddings.create({ model: EMBEDDING_MODEL, input }).withResponse();
    expect(again.response.headers.get('x-sluice-cache')).toBe('hit');
    expect(again.data.data[0]!.embedding).toEqual(vector);
  });

  it('retrieves a configured model, and answers 404 model_not_found for an unknown one', async () => {
    const client = stack.openai();
    const model = await client.models.retrieve(MODEL);
    expect(model).toMatchObject({ id: MODEL, object: 'model' });
    const err = await client.models.retrieve('gpt-nonexistent').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect((err as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
  });
});

describe('headers a client reads', () => {
  const expectRateLimitHeaders = (headers: Headers) => {
    for (const kind of ['requests', 'tokens']) {
      const limit = Number(headers.get(`x-ratelimit-limit-${kind}`));
      const remaining = Number(headers.get(`x-ratelimit-remaining-${kind}`));
      expect(limit, `x-ratelimit-limit-${kind}`).toBeGreaterThan(0);
      expect(headers.get(`x-ratelimit-remaining-${kind}`), `x-ratelimit-remaining-${kind}`).toMatch(/^\d+$/);
      expect(remaining).toBeLessThanOrEqual(limit);
      expect(headers.get(`x-ratelimit-reset-${kind}`), `x-ratelimit-reset-${kind}`).toBeTruthy();
    }
  };

  it('gives the request id as _request_id and the rate limits, on a whole answer', async () => {
    const answer = stack.openai().chat.completions.create({ model: MODEL, messages: [user('Headers, whole')] });
    const { response, request_id } = await answer.withResponse();
    const id = response.headers.get('x-sluice-request-id');
    expect(id).toMatch(/^req_/);
    // the same promise, parsed once: the SDK's `_request_id` on the completion itself
    expect((await answer)._request_id).toBe(id);
    expect(request_id).toBe(id);
    expectRateLimitHeaders(response.headers);
  });

  it('gives the same headers on a streamed answer', async () => {
    const { data, response, request_id } = await stack
      .openai()
      .chat.completions.create({ model: MODEL, messages: [user('Headers, streamed')], stream: true })
      .withResponse();
    for await (const chunk of data) expect(chunk.object).toBe('chat.completion.chunk');
    expect(request_id).toMatch(/^req_/);
    expect(request_id).toBe(response.headers.get('x-sluice-request-id'));
    expectRateLimitHeaders(response.headers);
  });
});

describe('a client that leaves', () => {
  /** The upstream saw one more stream cut short, and the ledger ended the request cancelled, billed for what was streamed. */
  async function expectCancelled(requestId: string, before: SimStats): Promise<void> {
    await eventually(async () => expect(sim.stats().aborted).toBe(before.aborted + 1), 10_000);
    expect(sim.stats().completions).toBe(before.completions);
    const r = await eventually(async () => {
      const t = await stack.ledger(`/v1/requests/${requestId}`);
      if (!t.timeline.some((e: { type: string }) => e.type === 'chat.cancelled')) throw new Error('not cancelled yet');
      return t;
    }, 20_000);
    const types = r.timeline.map((e: { type: string }) => e.type);
    expect(types).not.toContain('chat.completed');
    expect(types).not.toContain('cache.stored');
    expect(r.outputTokens).toBeGreaterThan(0);
  }

  it('stops the upstream when the SDK aborts mid-stream, and the request ends cancelled', async () => {
    sim.setFaults({ tokenLatencyMs: 100 });
    try {
      const before = sim.stats();
      const abort = new AbortController();
      // about 60 tokens: some 20 chunks, 2 s at this pace
      const { data, response } = await stack
        .openai()
        .chat.completions.create({ model: MODEL, messages: [user('Cancel me halfway through a long answer')], stream: true }, { signal: abort.signal })
        .withResponse();
      let chunks = 0;
      // the SDK's stream ends quietly on its own abort
      await (async () => {
        for await (const _ of data) if (++chunks === 2) abort.abort();
      })().catch((e: unknown) => {
        if (!(e instanceof OpenAI.APIUserAbortError)) throw e;
      });
      await expectCancelled(response.headers.get('x-sluice-request-id')!, before);
    } finally {
      sim.setFaults({ tokenLatencyMs: 0 });
    }
  });

  it('stops the upstream when a NATS client cancels its stream', async () => {
    sim.setFaults({ tokenLatencyMs: 100 });
    try {
      const before = sim.stats();
      const nats = new SluiceClient(stack.nc, { tenant: 'dev', key: DEV_KEY });
      // about 40 tokens: some 15 chunks
      let requestId = '';
      let chunks = 0;
      for await (const chunk of nats.stream({ model: MODEL, messages: [user('Stream a long tale I will abandon')] })) {
        requestId = chunk.requestId;
        if (++chunks === 2) {
          nats.cancel(requestId);
          break;
        }
      }
      expect(chunks).toBe(2);
      await expectCancelled(requestId, before);
    } finally {
      sim.setFaults({ tokenLatencyMs: 0 });
    }
  });
});

describe("upstream errors keep the upstream's meaning", () => {
  it('passes a context_length_exceeded 400 through, not retried', async () => {
    const errorsBefore = sim.stats().errors;
    const err = await stack
      .openai()
      .chat.completions.create({ model: SMALL_MODEL, messages: [user('too long '.repeat(SMALL_WINDOW))] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    const e = err as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e.status).toBe(400);
    expect(e.code).toBe('context_length_exceeded');
    expect(e.type).toBe('invalid_request_error');
    expect(e.param).toBe('messages');
    expect(e.message).toContain(`maximum context length is ${SMALL_WINDOW} tokens`);
    expect(sim.stats().errors).toBe(errorsBefore + 1);
  });
});

describe('NATS door with libs/client', () => {
  it('does a tool-calling round trip with the request body passed whole', async () => {
    const nats = new SluiceClient(stack.nc, { tenant: 'dev', key: DEV_KEY });
    const question = askTools('Weather in Nairobi, over NATS?');
    const first = await nats.chat(question);
    expect(first.requestId).toMatch(/^req_/);
    const completion = first.body as OpenAI.ChatCompletion;
    expect(completion.object).toBe('chat.completion');
    const call = onlyCall(completion);
    expect(() => Weather.parse(JSON.parse(call.function.arguments))).not.toThrow();

    const final = await nats.chat({
      ...question,
      messages: [
        ...question.messages,
        { role: 'assistant', content: null, tool_calls: completion.choices[0]!.message.tool_calls },
        { role: 'tool', tool_call_id: call.id, content: '{"temperature":24}' },
      ],
    });
    const answer = final.body as OpenAI.ChatCompletion;
    expect(answer.choices[0]?.finish_reason).toBe('stop');
    expect(answer.choices[0]?.message.content?.length).toBeGreaterThan(0);
  });

  it('answers a Responses request with the response object', async () => {
    const nats = new SluiceClient(stack.nc, { tenant: 'dev', key: DEV_KEY });
    const result = await nats.chat({ model: MODEL, input: 'A Responses request over NATS' }, { endpoint: 'responses' });
    expect(result.requestId).toMatch(/^req_/);
    const response = result.body as OpenAI.Responses.Response;
    expect(response.object).toBe('response');
    expect(response.status).toBe('completed');
    expect(outputText(response).length).toBeGreaterThan(0);
  });
});

// Each input issue 9 found refused, dropped or mangled, as it was reported.
describe('formerly failing inputs', () => {
  it('a request with tools is answered, not refused', async () => {
    const res = await stack.openai().chat.completions.create(askTools('Is it raining in Dublin?'));
    expect(res.choices[0]?.finish_reason).toBe('tool_calls');
  });

  it('an assistant turn with tool_calls and content null is accepted', async () => {
    const history: OpenAI.ChatCompletionMessageParam[] = [
      user('What is the weather in Quito?'),
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'call_q1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Quito","unit":"celsius"}' } }],
      },
      { role: 'tool', tool_call_id: 'call_q1', content: '{"temperature":14}' },
    ];
    const res = await stack.openai().chat.completions.create({ model: MODEL, messages: history, tools: [weatherTool] });
    expect(res.choices[0]?.message.content?.length).toBeGreaterThan(0);
  });

  it('an image part is accepted', async () => {
    const res = await stack.openai().chat.completions.create({
      model: MODEL,
      messages: [
        user([
          { type: 'text', text: 'Describe it' },
          { type: 'image_url', image_url: { url: dataUrl(flatPng(8, 8)) } },
        ]),
      ],
    });
    expect(res.choices[0]?.message.content?.length).toBeGreaterThan(0);
  });

  it('response_format json_object is answered in JSON, under a cache entry of its own', async () => {
    const client = stack.openai();
    const messages = [user('Describe a lighthouse, as JSON')];
    const plain = await client.chat.completions.create({ model: MODEL, messages }).withResponse();
    const json = await client.chat.completions.create({ model: MODEL, messages, response_format: { type: 'json_object' } }).withResponse();
    expect(plain.response.headers.get('x-sluice-cache')).toBe('miss');
    expect(json.response.headers.get('x-sluice-cache')).toBe('miss');
    const parsed: unknown = JSON.parse(json.data.choices[0]!.message.content!);
    expect(typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)).toBe(true);
    const again = await client.chat.completions.create({ model: MODEL, messages, response_format: { type: 'json_object' } }).withResponse();
    expect(again.response.headers.get('x-sluice-cache')).toBe('hit');
    expect(again.data.choices[0]?.message.content).toBe(json.data.choices[0]?.message.content);
  });

  it('usage keeps its detail objects, whole and streamed', async () => {
    const client = stack.openai();
    const whole = await client.chat.completions.create({ model: MODEL, messages: [user('Usage details, whole')] });
    expect(whole.usage?.prompt_tokens_details).toMatchObject({ cached_tokens: expect.any(Number) });
    expect(whole.usage?.completion_tokens_details).toMatchObject({ reasoning_tokens: expect.any(Number) });
    expect(whole.system_fingerprint).toBeTruthy();

    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [user('Usage details, streamed')],
      stream: true,
      stream_options: { include_usage: true },
    });
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
    expect(usage?.prompt_tokens_details).toMatchObject({ cached_tokens: expect.any(Number) });
    expect(usage?.completion_tokens_details).toMatchObject({ reasoning_tokens: expect.any(Number) });
  });

  // Last: it leaves the primary deployment with failures counted against its circuit.
  it('an upstream 429 with no fallback reaches the client as 429 with Retry-After', { timeout: 60_000 }, async () => {
    // every request is larger than a 1-token budget, so each attempt is refused with a 429
    sim.setFaults({ tokensPerMinute: 1 });
    try {
      const err = await stack
        .openai()
        .chat.completions.create({ model: MODEL, messages: [user('Throttle me upstream')] })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.RateLimitError);
      const e = err as InstanceType<typeof OpenAI.RateLimitError>;
      expect(e.status).toBe(429);
      expect(e.code).toBe('rate_limit_exceeded');
      expect(Number(e.headers?.get('retry-after'))).toBeGreaterThanOrEqual(1);
    } finally {
      sim.setFaults({ tokensPerMinute: null });
    }
  });
});
