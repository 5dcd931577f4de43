import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInbox, millis, type Subscription } from '@nats-io/transport-node';
import { consumeEvents, getJson, publishEvent, putConfig, type Bus, type Buckets, type Control, type Consumption } from '@sluice/bus';
import { eventuallyFound, startTestBus, type TestBus } from '@sluice/bus/testing';
import { Consumers, Topology, type AnyEvent, type ChatReply } from '@sluice/contracts';
import { contentOf } from '@sluice/contracts/testing';
import { admitted, completed, keyOf, request } from './fixtures.js';
import { onChatAdmitted, onChatCompleted } from './handlers.js';
import { ensureCacheTtl, followCacheTtl } from './ttl.js';

const config = {
  tenants: [
    { id: 'acme', keySha256: ['a'.repeat(64)] },
    { id: 'globex', keySha256: ['b'.repeat(64)], cache: { ttlSeconds: 300, policy: { length: 'store' } } },
  ],
  limits: {
    global: { requestsPerMinute: 1000, tokensPerMinute: 1_000_000 },
    tenantDefault: { requestsPerMinute: 100, tokensPerMinute: 100_000 },
    userDefault: { requestsPerMinute: 10, tokensPerMinute: 10_000 },
  },
  deployments: { sim: { baseUrl: 'http://127.0.0.1:1/v1', timeoutMs: 1000 } },
  models: { 'gpt-4o-mini': { deployments: ['sim'], fallback: [], price: { inputPerMTok: 0.15, outputPerMTok: 0.6 } } },
  tiers: [{ name: 'small', model: 'gpt-4o-mini', maxComplexity: 1 }],
  router: {},
  invoker: {},
  cache: { ttlSeconds: 600 },
  degrader: {},
  ingress: {},
};

let testBus: TestBus;
let bus: Bus;
let buckets: Buckets;
let control: Control;
let service: Array<Consumption>;
const events: AnyEvent[] = [];
let eventSub: Subscription;

const waitFor = <T>(what: string, find: () => T | undefined, timeoutMs = 10_000) => eventuallyFound(find, timeoutMs, what);

const eventOf = (type: string, requestId: string) => () => events.find((e) => e.type === type && e.requestId === requestId);
/** The first cache decision for a request: a hit or a miss. */
const lookupOf = (requestId: string) => () => events.find((e) => (e.type === 'cache.hit' || e.type === 'cache.missed') && e.requestId === requestId);

function inbox(): { subject: string; replies: ChatReply[] } {
  const subject = createInbox();
  const replies: ChatReply[] = [];
  bus.nc.subscribe(subject, { callback: (_, m) => void replies.push(m.json<ChatReply>()) });
  return { subject, replies };
}

beforeAll(async () => {
  testBus = await startTestBus(config, { name: 'cache' });
  ({ bus, buckets, control } = testBus);
  eventSub = bus.nc.subscribe('sluice.evt.>', { callback: (_, m) => void events.push(m.json<AnyEvent>()) });
  // wired as main.ts wires it
  const log = testBus.log;
  const deps = { cache: buckets.cache, ttlSeconds: await followCacheTtl(bus.jsm, control, log), config: control.config };
  service = [
    await consumeEvents(bus, { consumer: Consumers.cacheLookup, concurrency: 256, failPastDeadline: true, log, handler: onChatAdmitted(deps) }),
    await consumeEvents(bus, { consumer: Consumers.cacheStore, concurrency: 64, log, handler: onChatCompleted(deps) }),
  ];
});

afterAll(async () => {
  for (const s of service ?? []) await s.stop();
  eventSub?.unsubscribe();
  await testBus?.stop();
});

describe('cache service', () => {
  it('misses, stores the completed answer, then hits for the same request and answers the inbox', async () => {
    const req = request({ cacheKey: keyOf('acme', 'Name a prime.') });
    await publishEvent(bus.js, admitted('m1', 'acme', req));
    const missed = await waitFor('cache.missed', lookupOf('m1'));
    expect(missed.type).toBe('cache.missed');
    const key = (missed.data as { key?: string }).key;
    expect(key).toBe(req.cacheKey);

    await publishEvent(bus.js, completed('m1', 'acme', req, key, { content: '7' }));
    const stored = await waitFor('cache.stored', eventOf('cache.stored', 'm1'));
    expect(stored.data).toEqual({ key, model: 'gpt-4o-mini', ttlSeconds: 600, expiresAt: expect.any(Number) });
    expect((await getJson<{ requestId: string }>(buckets.cache, key!))?.value.requestId).toBe('m1');

    const client = inbox();
    await publishEvent(bus.js, admitted('m2', 'acme', { ...req, stream: true }, client.subject), {
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    });
    const hit = await waitFor('cache.hit', lookupOf('m2'));
    expect(hit).toMatchObject({ type: 'cache.hit', data: { key } });
    expect(contentOf((hit.data as { answer: { body: unknown } }).answer.body)).toBe('7');
    const result = await waitFor('the result', () => client.replies.find((r) => 'body' in r));
    expect(result).toMatchObject({ requestId: 'm2', cached: true });
    expect(contentOf((result as { body: unknown }).body)).toBe('7');
    // streamed: the chunks of the answer, then the result
    expect(client.replies.indexOf(result)).toBeGreaterThan(0);
    expect(client.replies.slice(0, -1).every((r) => 'chunk' in r && r.cached === true)).toBe(true);
  });

  it("keeps an answer for the shortest of the request's, the tenant's and the bucket's TTL, and serves it no longer", async () => {
    // globex's own TTL (300 s) is under the bucket's (600 s); its policy keeps answers cut by length
    const tenantTtl = request({ cacheKey: keyOf('globex', 'tenant ttl') });
    await publishEvent(bus.js, completed('ttl1', 'globex', tenantTtl, tenantTtl.cacheKey, { finishReason: 'length' }));
    expect((await waitFor('cache.stored', eventOf('cache.stored', 'ttl1'))).data).toMatchObject({ ttlSeconds: 300 });

    const short = request({ cacheKey: keyOf('globex', 'one second'), cacheTtlSeconds: 1 });
    await publishEvent(bus.js, completed('ttl2', 'globex', short, short.cacheKey));
    const stored = await waitFor('cache.stored', eventOf('cache.stored', 'ttl2'));
    expect(stored.data).toMatchObject({ ttlSeconds: 1 });
    await publishEvent(bus.js, admitted('ttl3', 'globex', short));
    expect((await waitFor('a lookup', lookupOf('ttl3'))).type).toBe('cache.hit');
    await new Promise((r) => setTimeout(r, 1_100));
    await publishEvent(bus.js, admitted('ttl4', 'globex', short));
    const late = await waitFor('a lookup', lookupOf('ttl4'));
    expect(late.type).toBe('cache.missed');
    expect(late.reason).toMatch(/^the cached answer of request ttl2 expired/);
    // acme has no policy of its own: the default skips an answer cut by length
    const cut = request({ cacheKey: keyOf('acme', 'cut') });
    await publishEvent(bus.js, completed('ttl5', 'acme', cut, cut.cacheKey, { finishReason: 'length' }));
    await publishEvent(bus.js, admitted('ttl6', 'acme', cut));
    expect((await waitFor('a lookup', lookupOf('ttl6'))).type).toBe('cache.missed');
    expect(events.some((e) => e.type === 'cache.stored' && e.requestId === 'ttl5')).toBe(false);
  });

  it('carries the traceparent to the event it publishes', async () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const seen = new Promise<string | undefined>((resolve) => {
      const sub = bus.nc.subscribe('sluice.evt.cache.missed.acme', {
        callback: (_, m) => {
          if (m.json<AnyEvent>().requestId !== 't1') return;
          sub.unsubscribe();
          resolve(m.headers?.get('traceparent'));
        },
      });
    });
    await publishEvent(bus.js, admitted('t1', 'acme', request({ cacheKey: keyOf('acme', 'trace me') })), { traceparent });
    expect(await seen).toBe(traceparent);
  });

  it('bypasses on cache: skip even when an entry exists', async () => {
    const key = keyOf('acme', 'Name a colour.');
    const req = request({ cacheKey: key });
    await publishEvent(bus.js, completed('s0', 'acme', req, key, { content: 'Blue.' }));
    await waitFor('cache.stored', eventOf('cache.stored', 's0'));

    await publishEvent(bus.js, admitted('s1', 'acme', { ...req, cache: 'skip', cacheKey: undefined }));
    const decision = await waitFor('lookup', lookupOf('s1'));
    expect(decision.type).toBe('cache.missed');
    expect(decision.reason).toBe('cache bypassed on request');
    expect(decision.data).not.toHaveProperty('key');
  });

  it('never serves one tenant the answer stored for another', async () => {
    const req = request({ cacheKey: keyOf('acme', 'What is our secret plan?') });
    await publishEvent(bus.js, completed('i0', 'acme', req, req.cacheKey, { content: 'acme only' }));
    await waitFor('cache.stored', eventOf('cache.stored', 'i0'));

    // globex's own key for the same words differs (the tenant is in it); and even an event that
    // names acme's key for a globex request is never served acme's entry
    await publishEvent(bus.js, admitted('i1', 'globex', { ...req, cacheKey: keyOf('globex', 'What is our secret plan?') }));
    expect((await waitFor('globex lookup', lookupOf('i1'))).type).toBe('cache.missed');
    await publishEvent(bus.js, admitted('i3', 'globex', req));
    expect((await waitFor('globex lookup with acme key', lookupOf('i3'))).type).toBe('cache.missed');

    await publishEvent(bus.js, admitted('i2', 'acme', req));
    expect((await waitFor('acme lookup', lookupOf('i2'))).type).toBe('cache.hit');
  });
});

describe('ensureCacheTtl', () => {
  it('moves the bucket max age to the configured ttl, including below the 2-minute duplicate window', async () => {
    const stream = `KV_${Topology.buckets.cache.name}`;
    expect(await ensureCacheTtl(bus.jsm, 60)).toBe(60);
    const info = await bus.jsm.streams.info(stream);
    expect(millis(info.config.max_age)).toBe(60_000);
    expect(millis(info.config.duplicate_window)).toBeLessThanOrEqual(60_000);
    expect(await ensureCacheTtl(bus.jsm, 600)).toBe(600);
  });

  it('follows a config change of cache.ttlSeconds without a restart', async () => {
    await putConfig(buckets, { ...config, cache: { ttlSeconds: 900 } });
    const stream = `KV_${Topology.buckets.cache.name}`;
    let maxAgeMs = 0;
    for (const end = Date.now() + 10_000; Date.now() < end && maxAgeMs !== 900_000; await new Promise((r) => setTimeout(r, 50))) {
      maxAgeMs = millis((await bus.jsm.streams.info(stream)).config.max_age);
    }
    expect(maxAgeMs).toBe(900_000);
  });
});
