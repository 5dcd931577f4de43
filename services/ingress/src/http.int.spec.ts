import { createConnection } from 'node:net';
import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shutdownMetrics, startMetrics } from '@sluice/telemetry';
import { Subjects } from '@sluice/contracts';
import { KEYS, startHarness, type Harness } from './testing.js';
import { eventually } from '@sluice/bus/testing';

let h: Harness;
let acme: OpenAI;

beforeAll(async () => {
  h = await startHarness();
  acme = new OpenAI({ baseURL: h.baseURL, apiKey: KEYS.acme, maxRetries: 0 });
});
afterAll(async () => {
  await h?.stop();
});

const user = (content: string) => [{ role: 'user' as const, content }];

function post(body: string, headers: Record<string, string> = {}, path = '/chat/completions', signal?: AbortSignal) {
  return fetch(`${h.baseURL}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEYS.acme}`, 'content-type': 'application/json', ...headers },
    body,
    ...(signal ? { signal } : {}),
  });
}

interface Body {
  error: { message: string; type: string; param: string | null; code: string };
}
async function json(res: Response): Promise<Body> {
  return (await res.json()) as Body;
}

/** What the fake stage's RATE_LIMIT reads as on the wire. */
const RATE_LIMIT_HEADERS = {
  'x-ratelimit-limit-requests': '1000',
  'x-ratelimit-remaining-requests': '999',
  'x-ratelimit-reset-requests': '60ms',
  'x-ratelimit-limit-tokens': '1000000',
  'x-ratelimit-remaining-tokens': '999990',
  'x-ratelimit-reset-tokens': '6m0s',
};
const rateLimitHeadersOf = (res: { headers: Headers }) => Object.fromEntries(Object.keys(RATE_LIMIT_HEADERS).map((k) => [k, res.headers.get(k)]));

// 500 tries of 10 ms before: about 5 s
const until = (condition: () => boolean) => eventually(condition, 5_000, { what: 'the condition' });

function rawHttp(request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(h.ingress.port, '127.0.0.1', () => socket.write(request));
    let text = '';
    socket.on('data', (d) => (text += d.toString()));
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
}

async function sdkError(p: Promise<unknown>): Promise<APIError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof APIError) return e;
    throw e;
  }
  throw new Error('expected an APIError');
}

describe('HTTP front door: answers', () => {
  it('answers a whole completion through the openai SDK, with the request id and rate-limit headers', async () => {
    const sent = { model: 'large', messages: user('hi'), temperature: 0.2, max_tokens: 50, user: 'u-1' };
    const { data, response, request_id } = await acme.chat.completions.create(sent).withResponse();
    const requestId = response.headers.get('x-sluice-request-id')!;
    expect(requestId).toMatch(/^req_[a-z2-7]{20}$/);
    expect(request_id).toBe(requestId);
    expect(rateLimitHeadersOf(response)).toEqual(RATE_LIMIT_HEADERS);
    expect(data.id).toBe(`chatcmpl-${requestId}`);
    expect(data.object).toBe('chat.completion');
    expect(data.model).toBe('large');
    expect(data.choices[0]!.message).toEqual({ role: 'assistant', content: 'echo: hi', refusal: null });
    expect(data.choices[0]!.finish_reason).toBe('stop');
    expect(data.usage).toEqual({ prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 });
    expect(response.headers.get('x-sluice-cache')).toBe('miss');
    expect(response.headers.get('x-sluice-model')).toBe('large');

    const event = h.requested.find((e) => e.requestId === requestId)!;
    expect(event.tenant).toBe('acme');
    const ctx = event.data.ctx;
    expect(ctx.frontDoor).toBe('http');
    expect(ctx.replyTo).toMatch(new RegExp(`^_INBOX\\..+\\.${requestId}$`));
    expect(ctx.deadline - ctx.receivedAt).toBe(3000);
    expect(ctx.request).toMatchObject({
      endpoint: 'chat.completions',
      model: 'large',
      user: 'u-1',
      priority: 'standard',
      stream: false,
      cache: 'default',
      maxOutputTokens: 50,
      choices: 1,
    });
    expect(ctx.request.cacheKey).toMatch(/^acme\.[0-9a-f]{64}$/);
    expect(event.data.body).toEqual(sent);
  });

  it('passes tools, tool_choice, response_format, logit_bias and fields it does not know through whole', async () => {
    const sent = {
      model: 'auto',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'weather?' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
          ],
        },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_0', type: 'function', function: { name: 'get_weather', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'call_0', content: '{"temp":20}' },
        { role: 'user', content: 'tool-call' },
      ],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
      tool_choice: 'auto',
      parallel_tool_calls: false,
      response_format: { type: 'json_object' },
      logit_bias: { '50256': -100 },
      max_completion_tokens: 64,
      n: 2,
      reasoning_effort: 'low',
      brand_new_field: { x: 1 },
    };
    const res = await post(JSON.stringify(sent));
    expect(res.status).toBe(200);
    const body = (await res.json()) as { choices: Array<{ message: { tool_calls: Array<{ function: { name: string } }> }; finish_reason: string }> };
    expect(body.choices[0]!.message.tool_calls[0]!.function.name).toBe('get_weather');
    expect(body.choices[0]!.finish_reason).toBe('tool_calls');
    const event = h.requested.find((e) => e.requestId === res.headers.get('x-request-id'))!;
    expect(event.data.body).toEqual(sent);
    expect(event.data.ctx.request).toMatchObject({ maxOutputTokens: 64, choices: 2 });
  });

  it("assembles streamed tool calls with the SDK's stream helper", async () => {
    const runner = acme.chat.completions.stream({
      model: 'auto',
      messages: user('tool-call'),
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }],
    });
    const final = await runner.finalChatCompletion();
    expect(final.choices[0]!.message.tool_calls).toEqual([
      { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
    ]);
    expect(final.choices[0]!.finish_reason).toBe('tool_calls');
  });

  it("passes an upstream's own refusal with its status, type, code and param", async () => {
    const e = await sdkError(acme.chat.completions.create({ model: 'auto', messages: user('context-too-long') }));
    expect([e.status, e.code, e.type, e.param]).toEqual([400, 'context_length_exceeded', 'invalid_request_error', 'messages']);
    const streamed = await post(JSON.stringify({ messages: user('context-too-long'), stream: true }));
    expect(streamed.status).toBe(400);
    expect((await json(streamed)).error).toEqual({
      message: "This model's maximum context length is 8 tokens.",
      type: 'invalid_request_error',
      param: 'messages',
      code: 'context_length_exceeded',
    });
  });

  it('passes the Sluice headers and extras into the request', async () => {
    const { response } = await acme.chat.completions
      .create(
        { model: 'auto', messages: user('hi'), metadata: { team: 'search' } },
        { headers: { 'x-sluice-priority': 'critical', 'x-sluice-feature': 'summaries', 'x-sluice-cache': 'skip' } },
      )
      .withResponse();
    const event = h.requested.find((e) => e.requestId === response.headers.get('x-sluice-request-id'))!;
    expect(event.data.ctx.request).toMatchObject({ model: 'auto', priority: 'critical', feature: 'summaries', cache: 'skip' });
    expect(event.data.ctx.request).not.toHaveProperty('cacheKey');
    expect(event.data.body).toMatchObject({ metadata: { team: 'search' } });
    expect(response.headers.get('x-sluice-model')).toBe('small');
  });

  it('streams through the SDK iterator: role first, content, finish, usage', async () => {
    const { data: stream, response } = await acme.chat.completions
      .create({ model: 'small', messages: user('stream me'), stream: true, stream_options: { include_usage: true } })
      .withResponse();
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    expect(response.headers.get('x-sluice-model')).toBe('small');
    expect(response.headers.get('x-request-id')).toBe(response.headers.get('x-sluice-request-id'));
    expect(rateLimitHeadersOf(response)).toEqual(RATE_LIMIT_HEADERS);
    expect(response.headers.get('x-sluice-cache')).toBe('miss');
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const requestId = response.headers.get('x-sluice-request-id')!;
    expect(chunks.every((c) => c.id === `chatcmpl-${requestId}` && c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Hello');
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('stop');
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(chunks.at(-1)!.usage).toEqual({ prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 });
  });

  it('streams without a usage chunk when not asked, and ends with [DONE]', async () => {
    const res = await post(JSON.stringify({ messages: user('stream me'), stream: true }));
    const text = await res.text();
    const events = text.split('\n\n').filter(Boolean);
    expect(events.at(-1)).toBe('data: [DONE]');
    const payloads = events.slice(0, -1).map((e) => JSON.parse(e.slice('data: '.length)));
    expect(payloads.map((p) => p.choices.length)).toEqual([1, 1, 1]);
    expect(payloads.some((p) => 'usage' in p)).toBe(false);
  });

  it('streams a result that came without chunks as the stream it stands for, with its rate limits', async () => {
    const { data: stream, response } = await acme.chat.completions
      .create({ model: 'auto', messages: user('result-only'), stream: true, stream_options: { include_usage: true } })
      .withResponse();
    expect(rateLimitHeadersOf(response)).toEqual(RATE_LIMIT_HEADERS);
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('whole at once');
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('stop');
    expect(chunks.at(-1)!.usage).toEqual({ prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 });
  });

  it('reports a cache hit in x-sluice-cache, whole and streamed', async () => {
    const whole = await acme.chat.completions.create({ model: 'auto', messages: user('cached') }).withResponse();
    expect(whole.response.headers.get('x-sluice-cache')).toBe('hit');
    const streamed = await acme.chat.completions.create({ model: 'auto', messages: user('cached'), stream: true }).withResponse();
    expect(streamed.response.headers.get('x-sluice-cache')).toBe('hit');
    let content = '';
    for await (const chunk of streamed.data) content += chunk.choices[0]?.delta.content ?? '';
    expect(content).toBe('from cache');
  });

  it('answers a downstream throttle with 429, Retry-After and retry-after-ms', async () => {
    const res = await post(JSON.stringify({ messages: user('throttle') }));
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('2');
    expect(res.headers.get('retry-after-ms')).toBe('1500');
    expect(res.headers.get('x-sluice-request-id')).toMatch(/^req_/);
    // the bucket that refused, and only it: the limiter stops at the first that refuses
    expect([
      res.headers.get('x-ratelimit-limit-requests'),
      res.headers.get('x-ratelimit-remaining-requests'),
      res.headers.get('x-ratelimit-reset-requests'),
    ]).toEqual(['3', '0', '1m0s']);
    expect(res.headers.get('x-ratelimit-limit-tokens')).toBeNull();
    expect(await json(res)).toEqual({
      error: { message: 'Rate limit reached; retry after the given time.', type: 'rate_limit_error', param: null, code: 'rate_limit_exceeded' },
    });
    const e = await sdkError(acme.chat.completions.create({ model: 'auto', messages: user('throttle') }));
    expect([e.status, e.code]).toEqual([429, 'rate_limit_exceeded']);
  });

  it('answers a shed with 503 and Retry-After, also before a stream started', async () => {
    const res = await post(JSON.stringify({ messages: user('shed'), stream: true }));
    expect(res.status).toBe(503);
    expect(res.headers.get('content-type')).toContain('application/json');
    expect(res.headers.get('retry-after')).toBe('5');
    expect(res.headers.get('retry-after-ms')).toBe('5000');
    expect((await json(res)).error.code).toBe('service_busy');
  });

  it('ends a stream that failed midway with an SSE error the SDK throws', async () => {
    const stream = await acme.chat.completions.create({ model: 'auto', messages: user('fail-midstream'), stream: true });
    const seen: string[] = [];
    const e = await sdkError(
      (async () => {
        for await (const chunk of stream) seen.push(chunk.choices[0]?.delta.content ?? '');
      })(),
    );
    expect(seen).toEqual(['partial']);
    expect(e.code).toBe('upstream_failed');
  });

  it('answers 504 deadline_exceeded when no answer comes in time, honouring a live config change', async () => {
    await h.applyConfig((c) => ({ ...c, ingress: { ...c.ingress, defaultDeadlineMs: 200 } }));
    try {
      const res = await post(JSON.stringify({ messages: user('silent') }));
      expect(res.status).toBe(504);
      expect((await json(res)).error.code).toBe('deadline_exceeded');
    } finally {
      await h.applyConfig((c) => c);
    }
  });

  it('accepts a key added to the config without a restart', async () => {
    const newKey = 'sk-acme-rotated';
    const digest = (await import('@sluice/contracts')).hashKey(newKey);
    await h.applyConfig((c) => ({ ...c, tenants: c.tenants.map((t) => (t.id === 'acme' ? { ...t, keySha256: [digest] } : t)) }));
    try {
      const rotated = new OpenAI({ baseURL: h.baseURL, apiKey: newKey, maxRetries: 0 });
      expect((await rotated.chat.completions.create({ model: 'auto', messages: user('hi') })).choices[0]!.message.content).toBe('echo: hi');
      expect((await sdkError(acme.chat.completions.create({ model: 'auto', messages: user('hi') }))).code).toBe('invalid_api_key');
    } finally {
      await h.applyConfig((c) => c);
    }
  });
});

describe('HTTP front door: Responses and Embeddings', () => {
  it('answers responses.create whole, with previous_response_id passed through', async () => {
    const { data, response } = await acme.responses
      .create({ model: 'small', input: 'hi', previous_response_id: 'resp_earlier', instructions: 'be brief' })
      .withResponse();
    expect(data.object).toBe('response');
    expect(data.output_text).toBe('echo: hi');
    expect(rateLimitHeadersOf(response)).toEqual(RATE_LIMIT_HEADERS);
    const event = h.requested.find((e) => e.requestId === response.headers.get('x-request-id'))!;
    expect(event.data.ctx.request).toMatchObject({ endpoint: 'responses', model: 'small', stream: false });
    expect(event.data.body).toEqual({ model: 'small', input: 'hi', previous_response_id: 'resp_earlier', instructions: 'be brief' });
  });

  it('streams responses.create as typed events, with no [DONE]', async () => {
    const stream = await acme.responses.create({ model: 'small', input: 'stream me', stream: true });
    const types: string[] = [];
    let text = '';
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === 'response.output_text.delta') text += event.delta;
    }
    expect(types[0]).toBe('response.created');
    expect(types.at(-1)).toBe('response.completed');
    expect(text).toBe('Hello');
    const raw = await (await post(JSON.stringify({ input: 'result-only', stream: true }), {}, '/responses')).text();
    expect(raw).toContain('event: response.created\ndata: {"type":"response.created"');
    expect(raw).toContain('event: response.completed\n');
    expect(raw).not.toContain('[DONE]');
  });

  it('ends a Responses stream that failed midway with an error the SDK throws', async () => {
    const stream = await acme.responses.create({ model: 'small', input: 'fail-midstream', stream: true });
    const e = await sdkError(
      (async () => {
        for await (const _ of stream) void _;
      })(),
    );
    expect(e.code).toBe('upstream_failed');
  });

  it('answers embeddings.create, never streamed', async () => {
    const { data, response } = await acme.embeddings.create({ model: 'small', input: 'embed me', dimensions: 3 }).withResponse();
    expect(data.data[0]!.embedding).toEqual([0.25, 0.5, 0.75]);
    expect(data.usage).toEqual({ prompt_tokens: 5, total_tokens: 5 });
    const event = h.requested.find((e) => e.requestId === response.headers.get('x-request-id'))!;
    expect(event.data.ctx.request).toMatchObject({ endpoint: 'embeddings', stream: false });
    expect(event.data.body).toMatchObject({ model: 'small', input: 'embed me', dimensions: 3 });
  });
});

describe('HTTP front door: clients that go away', () => {
  /** Every cancel published while `fn` runs, by request id. */
  async function cancelsDuring(fn: (seen: readonly string[]) => Promise<void>): Promise<string[]> {
    const seen: string[] = [];
    const sub = h.bus.nc.subscribe(Subjects.cancelAll, {
      callback: (_err, msg) => {
        seen.push(msg.subject.slice(msg.subject.lastIndexOf('.') + 1));
      },
    });
    try {
      await fn(seen);
      await h.bus.nc.flush();
      return seen;
    } finally {
      sub.unsubscribe();
    }
  }

  it('cancels the request of a client that left, streamed or whole, and no request that was answered', async () => {
    await h.applyConfig((c) => ({ ...c, ingress: { ...c.ingress, defaultDeadlineMs: 60_000 } }));
    try {
      const left: string[] = [];
      let answered = '';
      const leave = async (stream: boolean) => {
        const abort = new AbortController();
        const seen = h.requested.length;
        const res = post(JSON.stringify({ model: 'auto', messages: user('silent'), stream }), {}, '/chat/completions', abort.signal).catch((e: unknown) => e);
        await until(() => h.requested.length > seen);
        left.push(h.requested.at(-1)!.requestId);
        abort.abort();
        await res;
        await until(() => h.ingress.waiting() === 0);
      };
      const cancels = await cancelsDuring(async (seen) => {
        await leave(true);
        await leave(false);
        const whole = await acme.chat.completions.create({ model: 'auto', messages: user('hi') }).withResponse();
        answered = whole.response.headers.get('x-request-id')!;
        for await (const _ of await acme.chat.completions.create({ model: 'auto', messages: user('stream me'), stream: true })) void _;
        await until(() => left.every((id) => seen.includes(id)));
      });
      expect(cancels).toEqual(left);
      expect(answered).toMatch(/^req_/);
    } finally {
      await h.applyConfig((c) => c);
    }
  });

  it('stops waiting for a request whose client disconnected', async () => {
    await h.applyConfig((c) => ({ ...c, ingress: { ...c.ingress, defaultDeadlineMs: 60_000 } }));
    try {
      const abort = new AbortController();
      const seen = h.requested.length;
      const res = fetch(`${h.baseURL}/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEYS.acme}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'auto', messages: user('silent'), stream: true }),
        signal: abort.signal,
      }).catch((e: unknown) => e);
      await until(() => h.requested.length > seen);
      expect(h.ingress.waiting()).toBe(1);
      abort.abort();
      await res;
      await until(() => h.ingress.waiting() === 0);
    } finally {
      await h.applyConfig((c) => c);
    }
  });
});

describe('HTTP front door: malformed HTTP', () => {
  it('answers a malformed URL and a malformed request in OpenAI shape', async () => {
    const badUrl = await rawHttp(`GET /v1/%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(badUrl).toMatch(/^HTTP\/1.1 400/);
    expect(JSON.parse(badUrl.slice(badUrl.indexOf('\r\n\r\n') + 4)).error.code).toBe('invalid_request');
    const badHeader = await rawHttp(`GET /v1/models HTTP/1.1\r\nHost: x\r\nthis is not a header\r\n\r\n`);
    expect(badHeader).toMatch(/^HTTP\/1.1 400/);
    expect(JSON.parse(badHeader.slice(badHeader.indexOf('\r\n\r\n') + 4)).error.code).toBe('invalid_request');
  });
});

describe('HTTP front door: models, health, unknown routes', () => {
  it('lists the models the tenant may use, plus auto', async () => {
    expect((await acme.models.list()).data.map((m) => m.id)).toEqual(['small', 'large', 'auto']);
    const beta = new OpenAI({ baseURL: h.baseURL, apiKey: KEYS.beta, maxRetries: 0 });
    expect((await beta.models.list()).data.map((m) => m.id)).toEqual(['small', 'auto']);
    const res = await fetch(`${h.baseURL}/models`);
    expect(res.status).toBe(401);
    expect((await json(res)).error.code).toBe('missing_api_key');
  });

  it('retrieves a model the tenant may use, and answers 404 model_not_found for any other', async () => {
    expect(await acme.models.retrieve('large')).toMatchObject({ id: 'large', object: 'model', owned_by: 'sluice' });
    expect((await acme.models.retrieve('auto')).id).toBe('auto');
    const beta = new OpenAI({ baseURL: h.baseURL, apiKey: KEYS.beta, maxRetries: 0 });
    for (const p of [beta.models.retrieve('large'), acme.models.retrieve('gpt-9'), acme.models.retrieve('org/model')]) {
      const e = await sdkError(p);
      expect([e.status, e.code, e.param]).toEqual([404, 'model_not_found', 'model']);
    }
    expect((await fetch(`${h.baseURL}/models/small`)).status).toBe(401);
  });

  it('answers /healthz, /metrics without a key, and unknown routes with an OpenAI-shaped 404 that lists the routes', async () => {
    expect((await fetch(`${h.baseURL.replace('/v1', '')}/healthz`)).status).toBe(200);
    const off = await fetch(`${h.baseURL.replace('/v1', '')}/metrics`);
    expect([off.status, await off.text()]).toEqual([404, 'metrics are off (SLUICE_METRICS=off)\n']);
    expect(await startMetrics()).toBe(true);
    try {
      const on = await fetch(`${h.baseURL.replace('/v1', '')}/metrics`);
      expect(on.status).toBe(200);
      expect(on.headers.get('content-type')).toContain('text/plain');
    } finally {
      await shutdownMetrics();
    }
    const res = await fetch(`${h.baseURL}/audio/speech`, { method: 'POST' });
    expect(res.status).toBe(404);
    expect(res.headers.get('x-request-id')).toMatch(/^req_/);
    const error = (await json(res)).error;
    expect(error).toMatchObject({ code: 'not_found', type: 'invalid_request_error' });
    for (const route of ['POST /v1/chat/completions', 'POST /v1/responses', 'POST /v1/embeddings', 'GET /v1/models/{id}'])
      expect(error.message).toContain(route);
  });
});

describe('HTTP front door: rejections', () => {
  const hi = JSON.stringify({ messages: user('hi') });
  const cases: Array<{
    name: string;
    body: string;
    headers?: Record<string, string>;
    path?: string;
    status: number;
    code: string;
    param?: string;
    tenant: string;
  }> = [
    { name: 'invalid JSON', body: '{"messages": [', status: 400, code: 'invalid_json', param: 'body', tenant: 'acme' },
    { name: 'an empty body', body: '', status: 400, code: 'invalid_json', param: 'body', tenant: 'acme' },
    { name: 'a JSON array', body: '[]', status: 400, code: 'invalid_request', param: 'body', tenant: 'acme' },
    {
      name: 'a body over maxBodyBytes',
      body: JSON.stringify({ messages: user('x'.repeat(5000)) }),
      status: 413,
      code: 'body_too_large',
      param: 'body',
      tenant: 'acme',
    },
    {
      name: 'a text/plain body',
      body: hi,
      headers: { 'content-type': 'text/plain' },
      status: 400,
      code: 'invalid_request',
      param: 'content-type',
      tenant: 'acme',
    },
    { name: 'no key', body: hi, headers: { authorization: '' }, status: 401, code: 'missing_api_key', tenant: '_unknown' },
    { name: 'a Basic authorization', body: hi, headers: { authorization: 'Basic abc' }, status: 401, code: 'missing_api_key', tenant: '_unknown' },
    { name: 'a wrong key', body: hi, headers: { authorization: 'Bearer sk-wrong' }, status: 401, code: 'invalid_api_key', tenant: '_unknown' },
    {
      name: 'an unknown model',
      body: JSON.stringify({ model: 'gpt-9', messages: user('hi') }),
      status: 404,
      code: 'model_not_found',
      param: 'model',
      tenant: 'acme',
    },
    {
      name: 'a model the tenant may not use',
      body: JSON.stringify({ model: 'large', messages: user('hi') }),
      headers: { authorization: `Bearer ${KEYS.beta}` },
      status: 403,
      code: 'model_not_allowed',
      param: 'model',
      tenant: 'beta',
    },
    { name: 'no messages', body: JSON.stringify({ model: 'small' }), status: 400, code: 'invalid_request', param: 'messages', tenant: 'acme' },
    { name: 'empty messages', body: JSON.stringify({ messages: [] }), status: 400, code: 'invalid_request', param: 'messages', tenant: 'acme' },
    {
      name: 'too many messages',
      body: JSON.stringify({ messages: Array(9).fill({ role: 'user', content: 'x' }) }),
      status: 400,
      code: 'invalid_request',
      param: 'messages',
      tenant: 'acme',
    },
    {
      name: 'a bad role',
      body: JSON.stringify({ messages: [{ role: 'robot', content: 'x' }] }),
      status: 400,
      code: 'invalid_request',
      param: 'messages[0].role',
      tenant: 'acme',
    },
    {
      name: 'content of the wrong type',
      body: JSON.stringify({ messages: [{ role: 'user', content: 42 }] }),
      status: 400,
      code: 'invalid_request',
      param: 'messages[0].content',
      tenant: 'acme',
    },
    { name: 'n = 0', body: JSON.stringify({ messages: user('hi'), n: 0 }), status: 400, code: 'invalid_request', param: 'n', tenant: 'acme' },
    {
      name: 'a function name OpenAI would refuse',
      body: JSON.stringify({ messages: user('hi'), tools: [{ type: 'function', function: { name: 'get weather' } }] }),
      status: 400,
      code: 'invalid_request',
      param: 'tools[0].function.name',
      tenant: 'acme',
    },
    {
      name: 'a tool message without tool_call_id',
      body: JSON.stringify({ messages: [{ role: 'tool', content: 'x' }] }),
      status: 400,
      code: 'invalid_request',
      param: 'messages[0].tool_call_id',
      tenant: 'acme',
    },
    {
      name: 'a response without input',
      body: JSON.stringify({ model: 'small' }),
      path: '/responses',
      status: 400,
      code: 'invalid_request',
      param: 'input',
      tenant: 'acme',
    },
    {
      name: 'an embedding of an unknown encoding',
      body: JSON.stringify({ model: 'small', input: 'x', encoding_format: 'int8' }),
      path: '/embeddings',
      status: 400,
      code: 'invalid_request',
      param: 'encoding_format',
      tenant: 'acme',
    },
    {
      name: 'an embedding with a model the tenant may not use',
      body: JSON.stringify({ model: 'large', input: 'x' }),
      headers: { authorization: `Bearer ${KEYS.beta}` },
      path: '/embeddings',
      status: 403,
      code: 'model_not_allowed',
      param: 'model',
      tenant: 'beta',
    },
    {
      name: 'temperature out of range',
      body: JSON.stringify({ messages: user('hi'), temperature: 9 }),
      status: 400,
      code: 'invalid_request',
      param: 'temperature',
      tenant: 'acme',
    },
    {
      name: 'a bad priority header',
      body: hi,
      headers: { 'x-sluice-priority': 'asap' },
      status: 400,
      code: 'invalid_request',
      param: 'x-sluice-priority',
      tenant: 'acme',
    },
    {
      name: 'a bad body priority',
      body: JSON.stringify({ messages: user('hi'), priority: 'asap' }),
      status: 400,
      code: 'invalid_request',
      param: 'priority',
      tenant: 'acme',
    },
  ];

  it.each(cases)('refuses $name with $status $code, published as chat.rejected first', async (c) => {
    const res = await post(c.body, c.headers, c.path);
    expect(res.status).toBe(c.status);
    const requestId = res.headers.get('x-sluice-request-id');
    expect(requestId).toMatch(/^req_/);
    expect(res.headers.get('content-type')).toContain('application/json');
    const body = await json(res);
    expect(Object.keys(body)).toEqual(['error']);
    expect(body.error).toMatchObject({ code: c.code, param: c.param ?? null });
    expect(typeof body.error.message).toBe('string');
    expect(typeof body.error.type).toBe('string');

    const event = await h.lastRejected(c.tenant);
    expect(event.requestId).toBe(requestId);
    expect(event.data).toMatchObject({ code: c.code, status: c.status, stage: 'ingress' });
    expect(JSON.stringify(event)).not.toContain('sk-');
  });

  it('the SDK sees each refusal as an APIError with the status and code', async () => {
    const bad = new OpenAI({ baseURL: h.baseURL, apiKey: 'sk-wrong', maxRetries: 0 });
    const beta = new OpenAI({ baseURL: h.baseURL, apiKey: KEYS.beta, maxRetries: 0 });
    const checks: Array<[() => Promise<unknown>, number, string, string | null]> = [
      [() => bad.chat.completions.create({ model: 'auto', messages: user('hi') }), 401, 'invalid_api_key', null],
      [() => acme.chat.completions.create({ model: 'gpt-9', messages: user('hi') }), 404, 'model_not_found', 'model'],
      [() => beta.chat.completions.create({ model: 'large', messages: user('hi') }), 403, 'model_not_allowed', 'model'],
      [() => acme.chat.completions.create({ model: 'auto', messages: user('hi'), n: 200 }), 400, 'invalid_request', 'n'],
      [() => acme.embeddings.create({ model: 'small', input: [] }), 400, 'invalid_request', 'input'],
      [() => acme.embeddings.create({ model: 'auto', input: 'x' }), 400, 'invalid_request', 'model'],
      [() => acme.responses.create({ model: 'auto', input: 'hi', max_output_tokens: 0 }), 400, 'invalid_request', 'max_output_tokens'],
      [() => acme.chat.completions.create({ model: 'auto', messages: [] }), 400, 'invalid_request', 'messages'],
      [
        () => acme.chat.completions.create({ model: 'auto', messages: user('hi'), stream: true }, { headers: { 'x-sluice-priority': 'nope' } }),
        400,
        'invalid_request',
        'x-sluice-priority',
      ],
    ];
    for (const [p, status, code, param] of checks) {
      const e = await sdkError(p());
      expect([e.status, e.code, e.param]).toEqual([status, code, param]);
    }
  });
});
