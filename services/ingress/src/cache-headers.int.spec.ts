// The cache's request headers at both doors (TTL, namespace) and the answer's cache kind
// (`x-sluice-cache`, the client's `result.cache`), against the fake terminal stage of testing.ts.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SluiceClient, type RequestOptions } from '@sluice/client';
import { Headers } from '@sluice/contracts';
import { cacheKey } from '@sluice/facts';
import { clientError, KEYS, startHarness, type Harness } from './testing.js';

let h: Harness;
let nc: NatsConnection;
let acme: OpenAI;
let client: SluiceClient;

beforeAll(async () => {
  h = await startHarness();
  nc = await connect({ servers: h.nats.url });
  acme = new OpenAI({ baseURL: h.baseURL, apiKey: KEYS.acme, maxRetries: 0 });
  client = new SluiceClient(nc, { tenant: 'acme', key: KEYS.acme, timeoutMs: 5000 });
});
afterAll(async () => {
  await nc?.close();
  await h?.stop();
});

const ask = (content: string) => ({ model: 'auto', messages: [{ role: 'user' as const, content }] });
const requestOf = (requestId: string | null) => h.requested.find((e) => e.requestId === requestId)!.data.ctx.request;

function post(body: unknown, headers: Record<string, string>) {
  return fetch(`${h.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEYS.acme}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

/** Values each door must refuse, by header: out of range, not whole, not digits; outside the pattern. */
const BAD_TTLS = ['0', '31536001', '1.5', '1e3', '-5', '+60', '60s', 'forever', '9999999999'];
const BAD_NAMESPACES = ['has space', 'a/b', 'x'.repeat(65), 'docs:v2', 'é'];

describe('HTTP door: x-sluice-cache-ttl and x-sluice-cache-namespace', () => {
  it('carries both into the request, the namespace hashed into the key', async () => {
    const body = ask('namespaced');
    const res = await post(body, { 'x-sluice-cache-ttl': '120', 'x-sluice-cache-namespace': 'docs-v2.en_GB' });
    expect(res.status).toBe(200);
    const request = requestOf(res.headers.get('x-sluice-request-id'));
    expect(request).toMatchObject({ cacheTtlSeconds: 120, cacheNamespace: 'docs-v2.en_GB', cache: 'default' });
    expect(request.cacheKey).toBe(cacheKey('acme', 'chat.completions', body, 'docs-v2.en_GB'));
    expect(request.cacheKey).not.toBe(cacheKey('acme', 'chat.completions', body));
    const requested = h.requested.find((e) => e.requestId === res.headers.get('x-sluice-request-id'))!;
    expect(requested.reason).toContain('; cache namespace docs-v2.en_GB, cache TTL 120 s asked');

    const plain = await post(body, {});
    const without = requestOf(plain.headers.get('x-sluice-request-id'));
    expect(without.cacheKey).toBe(cacheKey('acme', 'chat.completions', body));
    expect(without).not.toHaveProperty('cacheTtlSeconds');
    expect(without).not.toHaveProperty('cacheNamespace');
  });

  it('takes the bounds of the TTL range', async () => {
    for (const ttl of ['1', '31536000']) {
      const res = await post(ask('bounds'), { 'x-sluice-cache-ttl': ttl });
      expect(res.status).toBe(200);
      expect(requestOf(res.headers.get('x-sluice-request-id')).cacheTtlSeconds).toBe(Number(ttl));
    }
  });

  it('ignores both with x-sluice-cache: skip, even malformed', async () => {
    const res = await post(ask('skipped'), { 'x-sluice-cache': 'skip', 'x-sluice-cache-ttl': 'forever', 'x-sluice-cache-namespace': 'a b' });
    expect(res.status).toBe(200);
    const request = requestOf(res.headers.get('x-sluice-request-id'));
    expect(request.cache).toBe('skip');
    for (const field of ['cacheKey', 'cacheTtlSeconds', 'cacheNamespace']) expect(request).not.toHaveProperty(field);
  });

  const refusals = [
    ...BAD_TTLS.map((value) => ({ header: 'x-sluice-cache-ttl', value })),
    ...BAD_NAMESPACES.map((value) => ({ header: 'x-sluice-cache-namespace', value })),
    { header: 'x-sluice-cache-ttl', value: '' },
    { header: 'x-sluice-cache-namespace', value: '' },
  ];
  it.each(refusals)('refuses $header: "$value" with 400 invalid_request naming the header, published as chat.rejected', async ({ header, value }) => {
    // undici refuses non-latin1 header values: send é as its UTF-8 bytes read as latin1, as a raw client would
    const res = await post(ask('bad header'), { [header]: Buffer.from(value, 'utf8').toString('latin1') });
    expect(res.status).toBe(400);
    const { error } = (await res.json()) as { error: { code: string; param: string; type: string; message: string } };
    expect(error).toMatchObject({ code: 'invalid_request', param: header, type: 'invalid_request_error' });
    expect(error.message).toContain(header);
    expect(res.headers.get('x-sluice-cache')).toBe('miss');
    const rejected = await h.lastRejected('acme');
    expect(rejected.requestId).toBe(res.headers.get('x-sluice-request-id'));
    expect(rejected.data).toMatchObject({ code: 'invalid_request', stage: 'ingress' });
  });
});

describe('HTTP door: x-sluice-cache says how the answer was found', () => {
  // `said` is what the fake stage reads: `cached <kind>` answers with that kind; `cached` alone is
  // a reply from before the kinds (cached: true, no cache); anything else an upstream's answer
  const kinds: Array<[string, string, string]> = [
    ['cached hit', 'hit', 'from hit'],
    ['cached semantic', 'semantic', 'from semantic'],
    ['cached coalesced', 'coalesced', 'from coalesced'],
    ['cached', 'hit', 'from cache'],
    ['not cached', 'miss', 'Hello'],
  ];
  it.each(kinds)('%s: whole and streamed, x-sluice-cache: %s', async (said, header, streamedContent) => {
    const whole = await acme.chat.completions.create(ask(said)).withResponse();
    expect(whole.response.headers.get('x-sluice-cache')).toBe(header);
    const streamed = await acme.chat.completions.create({ ...ask(said), stream: true }).withResponse();
    expect(streamed.response.headers.get('x-sluice-cache')).toBe(header);
    let content = '';
    for await (const chunk of streamed.data) content += chunk.choices[0]?.delta.content ?? '';
    expect(content).toBe(streamedContent);
  });

  it('sends the kind of a cached answer streamed from its result alone', async () => {
    const res = await post({ ...ask('result-only coalesced'), stream: true }, {});
    expect(res.headers.get('x-sluice-cache')).toBe('coalesced');
    expect(await res.text()).toContain('whole at once');
  });
});

describe('NATS door: sluice-cache-ttl and sluice-cache-namespace', () => {
  it('carries both into the request, the namespace hashed into the key', async () => {
    const body = ask('namespaced over nats');
    const result = await client.chat(body, { cacheTtlSeconds: 45, cacheNamespace: 'team_a' });
    const request = requestOf(result.requestId);
    expect(request).toMatchObject({ cacheTtlSeconds: 45, cacheNamespace: 'team_a', cache: 'default' });
    expect(request.cacheKey).toBe(cacheKey('acme', 'chat.completions', body, 'team_a'));
  });

  it('ignores both with sluice-cache: skip', async () => {
    const result = await client.chat(ask('skipped over nats'), { skipCache: true, cacheTtlSeconds: 0, cacheNamespace: 'a b' });
    const request = requestOf(result.requestId);
    for (const field of ['cacheKey', 'cacheTtlSeconds', 'cacheNamespace']) expect(request).not.toHaveProperty(field);
  });

  it('refuses bad values with invalid_request naming the header, published as chat.rejected', async () => {
    const cases: Array<[RequestOptions, string]> = [
      ...BAD_TTLS.map((v): [RequestOptions, string] => [{ cacheTtlSeconds: v as unknown as number }, Headers.cacheTtl]),
      ...BAD_NAMESPACES.filter((v) => /^[\x20-\x7e]+$/.test(v)).map((v): [RequestOptions, string] => [{ cacheNamespace: v }, Headers.cacheNamespace]),
    ];
    for (const [opts, param] of cases) {
      const e = await clientError(client.chat(ask('bad header over nats'), opts));
      expect([e.code, e.status, e.param]).toEqual(['invalid_request', 400, param]);
      const rejected = await h.lastRejected('acme');
      expect(rejected.requestId).toBe(e.requestId);
    }
  });

  it('tells the client how the answer was found, whole and streamed', async () => {
    for (const [said, kind] of [
      ['cached semantic', 'semantic'],
      ['cached coalesced', 'coalesced'],
      ['cached hit', 'hit'],
      ['cached', 'hit'],
      ['not cached', 'miss'],
    ] as const) {
      const whole = await client.chat(ask(said));
      expect([whole.cache, whole.cached]).toEqual([kind, kind !== 'miss']);
      const it = client.stream(ask(said));
      let r = await it.next();
      while (!r.done) r = await it.next();
      expect(r.value.cache).toBe(kind);
    }
  });
});
