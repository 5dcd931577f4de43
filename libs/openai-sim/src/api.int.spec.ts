import { encode } from 'gpt-tokenizer';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { countPromptTokens } from './tokens.js';
import { DEFAULT_MODELS, type Sim, startSim } from './mod.js';

let sim: Sim;
let client: OpenAI;

beforeAll(async () => {
  sim = await startSim({ port: 0 });
  client = new OpenAI({ baseURL: sim.url, apiKey: 'x', maxRetries: 0 });
});
afterAll(() => sim.close());
beforeEach(() => sim.reset());

const messages = [
  { role: 'system' as const, content: 'You are a helpful assistant.' },
  { role: 'user' as const, content: 'What is the capital of France?' },
];

describe('POST /v1/chat/completions', () => {
  it('answers a whole completion with exact usage', async () => {
    const { data: r, response } = await client.chat.completions.create({ model: 'gpt-4o-mini', messages }).withResponse();
    expect(r.id).toMatch(/^chatcmpl-/);
    expect(r.object).toBe('chat.completion');
    expect(r.model).toBe('gpt-4o-mini');
    expect(response.headers.get('x-request-id')).toMatch(/^req_/);
    expect(response.headers.get('x-ratelimit-limit-requests')).toBeNull();
    const choice = r.choices[0];
    expect(choice?.message.role).toBe('assistant');
    expect(choice?.finish_reason).toBe('stop');
    const content = choice?.message.content ?? '';
    expect(content.startsWith('Echo: What is the capital of France')).toBe(true);
    expect(r.usage?.completion_tokens).toBe(encode(content).length);
    expect(r.usage?.prompt_tokens).toBe(countPromptTokens(messages));
    expect(r.usage?.total_tokens).toBe((r.usage?.prompt_tokens ?? 0) + (r.usage?.completion_tokens ?? 0));
    expect(sim.stats()).toMatchObject({
      requests: 1,
      completions: 1,
      promptTokens: r.usage?.prompt_tokens,
      completionTokens: r.usage?.completion_tokens,
      totalTokens: r.usage?.total_tokens,
    });
  });

  it('is deterministic and truncates at max_tokens with finish_reason length', async () => {
    const a = await client.chat.completions.create({ model: 'gpt-4o', messages });
    const b = await client.chat.completions.create({ model: 'gpt-4o', messages });
    expect(b.choices[0]?.message.content).toBe(a.choices[0]?.message.content);
    const short = await client.chat.completions.create({ model: 'gpt-4o', messages, max_completion_tokens: 5 });
    expect(short.usage?.completion_tokens).toBe(5);
    expect(encode(short.choices[0]?.message.content ?? '')).toHaveLength(5);
    expect(short.choices[0]?.finish_reason).toBe('length');
  });

  it('streams chunks the SDK iterates, with exact usage when include_usage is set', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages,
      stream: true,
      stream_options: { include_usage: true },
    });
    let content = '';
    let chunks = 0;
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      chunks++;
      expect(chunk.object).toBe('chat.completion.chunk');
      content += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(chunks).toBeGreaterThan(3);
    expect(finish).toBe('stop');
    expect(usage?.completion_tokens).toBe(encode(content).length);
    expect(usage?.prompt_tokens).toBe(countPromptTokens(messages));
    expect(sim.stats()).toMatchObject({
      completions: 1,
      promptTokens: usage?.prompt_tokens,
      completionTokens: usage?.completion_tokens,
      totalTokens: usage?.total_tokens,
    });
  });

  it('streams without a usage chunk when include_usage is not set, and still counts', async () => {
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, stream: true, max_tokens: 7 });
    let content = '';
    for await (const chunk of stream) {
      expect(chunk.usage ?? null).toBeNull();
      content += chunk.choices[0]?.delta.content ?? '';
    }
    expect(encode(content)).toHaveLength(7);
    expect(sim.stats()).toMatchObject({ completions: 1, completionTokens: 7 });
  });

  it('answers the same content streamed and not streamed', async () => {
    const whole = await client.chat.completions.create({ model: 'gpt-4o-mini', messages });
    let streamed = '';
    for await (const c of await client.chat.completions.create({ model: 'gpt-4o-mini', messages, stream: true })) {
      streamed += c.choices[0]?.delta.content ?? '';
    }
    expect(streamed).toBe(whole.choices[0]?.message.content);
  });

  it('rejects bad input with OpenAI-shaped 400 and 404 errors, counted as errors', async () => {
    const missing = await client.chat.completions
      .create({ model: 'gpt-4o-mini' } as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming)
      .catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(OpenAI.BadRequestError);
    expect(missing).toMatchObject({ status: 400, type: 'invalid_request_error', param: 'messages', code: 'missing_required_parameter' });

    const noModel = await client.chat.completions.create({ messages } as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming).catch((e: unknown) => e);
    expect(noModel).toBeInstanceOf(OpenAI.BadRequestError);

    const unknown = await client.chat.completions.create({ model: 'gpt-9', messages }).catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
    expect(unknown).toMatchObject({ status: 404, code: 'model_not_found' });

    const n2 = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, n: 129 }).catch((e: unknown) => e);
    expect(n2).toMatchObject({ status: 400, param: 'n' });

    expect(sim.stats()).toMatchObject({ requests: 4, errors: 4, completions: 0, promptTokens: 0, totalTokens: 0 });
  });

  it('answers unparsable JSON and unknown routes in OpenAI error shape', async () => {
    const bad = await fetch(`${sim.url}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{nope' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
    const lost = await fetch(`${sim.url}/nothing-here`);
    expect(lost.status).toBe(404);
    expect(((await lost.json()) as { error: { message: string } }).error.message).toContain('/v1/nothing-here');
    expect(sim.stats()).toMatchObject({ requests: 1, errors: 1 });
  });

  it('accepts any Authorization header, or none, and any content-type', async () => {
    const variants: Record<string, string>[] = [{}, { authorization: 'Bearer sk-whatever' }, { authorization: 'garbage', 'content-type': 'application/json' }];
    for (const headers of variants) {
      const res = await fetch(`${sim.url}/chat/completions`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ model: 'gpt-4o-mini', messages }),
      });
      expect(res.status).toBe(200);
    }
    expect(sim.stats().completions).toBe(3);
  });
});

describe('POST /v1/embeddings', () => {
  it('returns unit vectors through the SDK (base64 by default) with exact usage', async () => {
    const inputs = ['the cat sat on the mat', 'a cat sat on a rug', 'quarterly revenue grew'];
    const r = await client.embeddings.create({ model: 'text-embedding-3-small', input: inputs });
    expect(r.data).toHaveLength(3);
    const vecs = r.data.map((d) => d.embedding);
    for (const v of vecs) {
      expect(v).toHaveLength(256);
      expect(Math.hypot(...v)).toBeCloseTo(1, 5);
    }
    const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * (b[i] ?? 0), 0);
    expect(dot(vecs[0] ?? [], vecs[1] ?? [])).toBeGreaterThan(dot(vecs[0] ?? [], vecs[2] ?? []));
    const tokens = inputs.reduce((s, t) => s + encode(t).length, 0);
    expect(r.usage.prompt_tokens).toBe(tokens);

    const floats = await client.embeddings.create({ model: 'text-embedding-3-small', input: inputs[0] ?? '', encoding_format: 'float', dimensions: 256 });
    expect(floats.data[0]?.embedding).toEqual(vecs[0]);
    expect(sim.stats()).toMatchObject({ requests: 2, embeddings: 2, embeddingTokens: tokens + encode(inputs[0] ?? '').length, promptTokens: 0 });
  });

  it('honours dimensions and rejects an unknown model', async () => {
    const r = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'x', dimensions: 12 });
    expect(r.data[0]?.embedding).toHaveLength(12);
    const err = await client.embeddings.create({ model: 'nope', input: 'x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
  });
});

describe('GET /v1/models', () => {
  it('lists the default models', async () => {
    const ids: string[] = [];
    for await (const m of client.models.list()) ids.push(m.id);
    expect(ids).toEqual([...DEFAULT_MODELS]);
    expect((await client.models.retrieve('gpt-4o')).id).toBe('gpt-4o');
  });

  it('retrieves one model as OpenAI model object, and answers 404 model_not_found for another', async () => {
    expect(await client.models.retrieve('gpt-4o-mini')).toEqual({
      id: 'gpt-4o-mini',
      object: 'model',
      created: expect.any(Number) as number,
      owned_by: 'system',
    });
    const err = await client.models.retrieve('gpt-9').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(err).toMatchObject({ status: 404, code: 'model_not_found', param: 'model', type: 'invalid_request_error' });
    expect((err as Error).message).toContain("The model 'gpt-9' does not exist");
  });

  it('serves exactly the configured models', async () => {
    const other = await startSim({ models: ['m-1', 'm-2'] });
    try {
      const c = new OpenAI({ baseURL: other.url, apiKey: 'x', maxRetries: 0 });
      const page = await c.models.list();
      expect(page.data.map((m) => m.id)).toEqual(['m-1', 'm-2']);
      const r = await c.chat.completions.create({ model: 'm-2', messages });
      expect(r.model).toBe('m-2');
      await expect(c.chat.completions.create({ model: 'gpt-4o-mini', messages })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    } finally {
      await other.close();
    }
  });
});
