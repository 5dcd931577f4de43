import { createConnection } from 'node:net';
import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

function post(body: string, headers: Record<string, string> = {}) {
  return fetch(`${h.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEYS.acme}`, 'content-type': 'application/json', ...headers },
    body,
  });
}

interface Body {
  error: { message: string; type: string; param: string | null; code: string };
}
async function json(res: Response): Promise<Body> {
  return (await res.json()) as Body;
}

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
  it('answers a whole completion through the openai SDK, with the x-sluice headers', async () => {
    const { data, response } = await acme.chat.completions
      .create({ model: 'large', messages: user('hi'), temperature: 0.2, max_tokens: 50, user: 'u-1' })
      .withResponse();
    const requestId = response.headers.get('x-sluice-request-id')!;
    expect(requestId).toMatch(/^req_[a-z2-7]{20}$/);
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
      model: 'large',
      user: 'u-1',
      priority: 'standard',
      stream: false,
      cache: 'default',
      params: { temperature: 0.2, max_tokens: 50 },
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
    expect(event.data.ctx.request).toMatchObject({ model: 'auto', priority: 'critical', feature: 'summaries', cache: 'skip', metadata: { team: 'search' } });
    expect(response.headers.get('x-sluice-model')).toBe('small');
  });

  it('streams through the SDK iterator: role first, content, finish, usage', async () => {
    const { data: stream, response } = await acme.chat.completions
      .create({ model: 'small', messages: user('stream me'), stream: true, stream_options: { include_usage: true } })
      .withResponse();
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    expect(response.headers.get('x-sluice-model')).toBe('small');
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

  it('streams a result that came without chunks as one content chunk', async () => {
    const stream = await acme.chat.completions.create({ model: 'auto', messages: user('result-only'), stream: true });
    let content = '';
    for await (const chunk of stream) content += chunk.choices[0]?.delta.content ?? '';
    expect(content).toBe('whole at once');
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
    expect(await json(res)).toEqual({
      error: { message: 'Rate limit reached; retry after the given time.', type: 'rate_limit_error', param: null, code: 'rate_limited' },
    });
    const e = await sdkError(acme.chat.completions.create({ model: 'auto', messages: user('throttle') }));
    expect([e.status, e.code]).toEqual([429, 'rate_limited']);
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

describe('HTTP front door: clients that go away', () => {
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

  it('answers /healthz, and unknown routes with an OpenAI-shaped 404', async () => {
    expect((await fetch(`${h.baseURL.replace('/v1', '')}/healthz`)).status).toBe(200);
    const res = await fetch(`${h.baseURL}/embeddings`, { method: 'POST' });
    expect(res.status).toBe(404);
    expect((await json(res)).error).toMatchObject({ code: 'not_found', type: 'invalid_request_error' });
  });
});

describe('HTTP front door: rejections', () => {
  const hi = JSON.stringify({ messages: user('hi') });
  const cases: Array<{ name: string; body: string; headers?: Record<string, string>; status: number; code: string; param?: string; tenant: string }> = [
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
    { name: 'n = 2', body: JSON.stringify({ messages: user('hi'), n: 2 }), status: 400, code: 'invalid_request', param: 'n', tenant: 'acme' },
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
    const res = await post(c.body, c.headers);
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
      [() => acme.chat.completions.create({ model: 'auto', messages: user('hi'), n: 3 }), 400, 'invalid_request', 'n'],
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
