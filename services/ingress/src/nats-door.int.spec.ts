import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SluiceClient, type ChatChunk, type ClientRequest } from '@sluice/client';
import { Headers, parseReply, Subjects, type ChatErrorReply, type ChatReply } from '@sluice/contracts';
import { contentOf } from '@sluice/contracts/testing';
import { clientError, KEYS, startHarness, startNats, type Harness } from './testing.js';

let h: Harness;
let nc: NatsConnection;
let acme: SluiceClient;

beforeAll(async () => {
  h = await startHarness();
  nc = await connect({ servers: h.nats.url });
  acme = new SluiceClient(nc, { tenant: 'acme', key: KEYS.acme, timeoutMs: 5000 });
});
afterAll(async () => {
  await nc?.close();
  await h?.stop();
});

const ask = (content: string, extra: Partial<ClientRequest> = {}): ClientRequest => ({ messages: [{ role: 'user', content }], ...extra });

async function rawRequest(subject: string, body: string, key?: string, endpoint?: string): Promise<ChatErrorReply> {
  return (await rawReply(subject, body, key, endpoint)) as ChatErrorReply;
}

async function rawReply(subject: string, body: string, key?: string, endpoint?: string): Promise<ChatReply> {
  const hdrs = natsHeaders();
  if (key) hdrs.set(Headers.tenantKey, key);
  if (endpoint) hdrs.set(Headers.endpoint, endpoint);
  const msg = await nc.request(subject, new TextEncoder().encode(body), { headers: hdrs, timeout: 5000 });
  return parseReply(msg.data);
}

const deltaOf = (chunk: unknown) => (chunk as { choices: Array<{ delta: { content?: string } }> }).choices[0]?.delta.content ?? '';

describe('NATS front door with SluiceClient', () => {
  it('answers a whole request, the terminal stage replying straight to the client inbox', async () => {
    const result = await acme.chat(ask('hi', { model: 'large', user: 'u-7', feature: 'search', priority: 'realtime', temperature: 0.1, max_tokens: 9 }));
    expect(contentOf(result.body)).toBe('echo: hi');
    expect(result.body).toMatchObject({ id: `chatcmpl-${result.requestId}`, object: 'chat.completion', model: 'large' });
    expect(result.model).toBe('large');
    expect(result.requestId).toMatch(/^req_[a-z2-7]{20}$/);
    const event = h.requested.find((e) => e.requestId === result.requestId)!;
    expect(event.tenant).toBe('acme');
    expect(event.data.ctx.frontDoor).toBe('nats');
    // the client's own (muxed) inbox, not one of ingress's
    expect(event.data.ctx.replyTo).toMatch(/^_INBOX\./);
    expect(event.data.ctx.request).toMatchObject({
      endpoint: 'chat.completions',
      model: 'large',
      user: 'u-7',
      feature: 'search',
      priority: 'realtime',
      stream: false,
      cache: 'default',
      maxOutputTokens: 9,
    });
    expect(event.data.body).toMatchObject({ model: 'large', temperature: 0.1, max_tokens: 9, feature: 'search' });
  });

  it('takes the Responses and Embeddings bodies named by the sluice-endpoint header, and answers with their objects', async () => {
    const response = await rawReply(Subjects.chat('acme'), JSON.stringify({ model: 'small', input: 'hi' }), KEYS.acme, 'responses');
    expect(response).toMatchObject({ model: 'small', body: { object: 'response', status: 'completed' } });
    const embedding = await rawReply(Subjects.chat('acme'), JSON.stringify({ model: 'small', input: ['a', 'b'], stream: true }), KEYS.acme, 'embeddings');
    expect(embedding).toMatchObject({ body: { object: 'list', data: [{ object: 'embedding', embedding: [0.25, 0.5, 0.75] }] } });
    const event = h.requested.find((e) => e.requestId === (embedding as { requestId: string }).requestId)!;
    expect(event.data.ctx.request).toMatchObject({ endpoint: 'embeddings', stream: false, model: 'small' });
    expect(event.data.body).toEqual({ model: 'small', input: ['a', 'b'], stream: true });
  });

  it('refuses an unknown sluice-endpoint, and validates each endpoint as HTTP does', async () => {
    const subject = Subjects.chat('acme');
    expect((await rawRequest(subject, JSON.stringify(ask('hi')), KEYS.acme, 'completions')).error).toMatchObject({
      code: 'invalid_request',
      status: 400,
      param: Headers.endpoint,
    });
    expect((await rawRequest(subject, JSON.stringify({ model: 'small' }), KEYS.acme, 'responses')).error).toMatchObject({
      code: 'invalid_request',
      param: 'input',
    });
    expect((await rawRequest(subject, JSON.stringify({ model: 'small', input: 'x', dimensions: 0 }), KEYS.acme, 'embeddings')).error).toMatchObject({
      code: 'invalid_request',
      param: 'dimensions',
    });
    expect((await h.lastRejected('acme')).data).toMatchObject({ code: 'invalid_request', stage: 'ingress' });
  });

  it('streams chunks and returns the final result', async () => {
    const it = acme.stream(ask('stream me'), { skipCache: true });
    const chunks: ChatChunk[] = [];
    let r = await it.next();
    for (; !r.done; r = await it.next()) chunks.push(r.value);
    expect(chunks.map((c) => deltaOf(c.chunk))).toEqual(['Hel', 'lo', '', '']);
    expect(chunks[0]!.rateLimit).toBeDefined();
    expect(contentOf(r.value.body)).toBe('Hello');
    const event = h.requested.find((e) => e.requestId === r.value.requestId)!;
    expect(event.data.ctx.request).toMatchObject({ stream: true, cache: 'skip' });
  });

  it('throws a downstream error with its code, status and retry time', async () => {
    const e = await clientError(acme.chat(ask('throttle')));
    expect([e.code, e.status, e.retryAfterMs]).toEqual(['rate_limit_exceeded', 429, 1500]);
    expect(e.requestId).toMatch(/^req_/);
    const s = await clientError(
      (async () => {
        for await (const _ of acme.stream(ask('fail-midstream'))) void _;
      })(),
    );
    expect([s.code, s.status]).toEqual(['upstream_failed', 502]);
  });

  it('refuses a wrong key, publishing chat.rejected for the addressed tenant', async () => {
    const wrong = new SluiceClient(nc, { tenant: 'acme', key: 'sk-wrong' });
    const e = await clientError(wrong.chat(ask('hi')));
    expect([e.code, e.status]).toEqual(['invalid_api_key', 401]);
    const event = await h.lastRejected('acme');
    expect(event.requestId).toBe(e.requestId);
    expect(event.data).toMatchObject({ code: 'invalid_api_key', status: 401, stage: 'ingress' });
    expect(JSON.stringify(event)).not.toContain('sk-wrong');
  });

  it("refuses a tenant's key on another tenant's subject", async () => {
    const e = await clientError(new SluiceClient(nc, { tenant: 'beta', key: KEYS.acme }).chat(ask('hi')));
    expect(e.code).toBe('invalid_api_key');
    expect((await h.lastRejected('beta')).requestId).toBe(e.requestId);
    const ghost = await clientError(new SluiceClient(nc, { tenant: 'ghost', key: KEYS.acme }).chat(ask('hi')));
    expect((await h.lastRejected('_unknown')).requestId).toBe(ghost.requestId);
  });

  it('validates exactly as HTTP does', async () => {
    const beta = new SluiceClient(nc, { tenant: 'beta', key: KEYS.beta });
    const cases: Array<[() => Promise<unknown>, string, number, string]> = [
      [() => acme.chat(ask('hi', { model: 'gpt-9' })), 'model_not_found', 404, 'acme'],
      [() => beta.chat(ask('hi', { model: 'large' })), 'model_not_allowed', 403, 'beta'],
      [() => acme.chat({ messages: [] }), 'invalid_request', 400, 'acme'],
      [() => acme.chat(ask('hi', { priority: 'asap' as never })), 'invalid_request', 400, 'acme'],
      [() => acme.chat({ messages: [{ role: 'robot' as never, content: 'x' }] }), 'invalid_request', 400, 'acme'],
      [() => acme.chat(ask('hi', { temperature: 7 })), 'invalid_request', 400, 'acme'],
    ];
    for (const [p, code, status, tenant] of cases) {
      const e = await clientError(p());
      expect([e.code, e.status]).toEqual([code, status]);
      const event = await h.lastRejected(tenant);
      expect(event.requestId).toBe(e.requestId);
      expect(event.data.code).toBe(code);
    }
  });

  it('answers bad raw requests with a ChatErrorReply', async () => {
    const subject = Subjects.chat('acme');
    expect((await rawRequest(subject, '{"messages": [', KEYS.acme)).error).toMatchObject({ code: 'invalid_json', status: 400 });
    expect((await rawRequest(subject, '', KEYS.acme)).error).toMatchObject({ code: 'invalid_json', status: 400 });
    expect((await rawRequest(subject, JSON.stringify(ask('x'.repeat(5000))), KEYS.acme)).error).toMatchObject({ code: 'body_too_large', status: 413 });
    const missing = await rawRequest(subject, JSON.stringify(ask('hi')));
    expect(missing.error).toMatchObject({ code: 'missing_api_key', status: 401 });
    expect((await h.lastRejected('acme')).requestId).toBe(missing.requestId);
  });

  it('drops a request without a reply subject', async () => {
    const hdrs = natsHeaders();
    hdrs.set(Headers.tenantKey, KEYS.acme);
    nc.publish(Subjects.chat('acme'), new TextEncoder().encode(JSON.stringify(ask('hi', { user: 'nobody-listens' }))), { headers: hdrs });
    // a request after it through the same door and the same consumer: the dropped one would be seen first
    const after = await acme.chat(ask('hi', { user: 'after' }));
    expect(h.requested.some((e) => e.requestId === after.requestId)).toBe(true);
    expect(h.requested.some((e) => e.data.ctx.request.user === 'nobody-listens')).toBe(false);
  });

  it('times out with deadline_exceeded when no answer comes', async () => {
    const quick = new SluiceClient(nc, { tenant: 'acme', key: KEYS.acme, timeoutMs: 300 });
    expect((await clientError(quick.chat(ask('silent')))).code).toBe('deadline_exceeded');
    expect(
      (
        await clientError(
          (async () => {
            for await (const _ of quick.stream(ask('silent'))) void _;
          })(),
        )
      ).code,
    ).toBe('deadline_exceeded');
  });
});

describe('SluiceClient without an ingress', () => {
  it('reports service_busy when nobody listens on the front door', async () => {
    const empty = await startNats();
    const lone = await connect({ servers: empty.url });
    try {
      const e = await clientError(new SluiceClient(lone, { tenant: 'acme', key: KEYS.acme }).chat(ask('hi')));
      expect([e.code, e.status]).toEqual(['service_busy', 503]);
    } finally {
      await lone.close();
      await empty.stop();
    }
  });
});
