import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consumeEvents, publishEvent, putDegrade, type Consumption } from '@sluice/bus';
import { Consumers, Headers, type ChatReply, type ChatRequest } from '@sluice/contracts';
import { chatRequest, contentOf, missed, requestContext } from '@sluice/contracts/testing';
import { collectEvents, eventually, startTestBus, type TestBus } from '@sluice/bus/testing';
import { onCacheMissed } from './handler.js';

const rate = { requestsPerMinute: 1000, tokensPerMinute: 1_000_000 };
const config = {
  tenants: [{ id: 'acme', keySha256: ['0'.repeat(64)] }],
  limits: { global: rate, tenantDefault: rate, userDefault: rate },
  deployments: { d1: { baseUrl: 'http://127.0.0.1:1/v1', timeoutMs: 1000 }, d2: { baseUrl: 'http://127.0.0.1:2/v1', timeoutMs: 1000 } },
  models: {
    small: { deployments: ['d1'], fallback: [], price: { inputPerMTok: 1, outputPerMTok: 1 } },
    large: { deployments: ['d2'], fallback: ['small'], price: { inputPerMTok: 1, outputPerMTok: 1 } },
  },
  tiers: [
    { name: 'cheap', model: 'small', maxComplexity: 0.3 },
    { name: 'premium', model: 'large', maxComplexity: 1 },
  ],
  router: { degradedMaxTokens: 64, shedRetryAfterMs: 3000, staticFallback: 'We are busy; back soon.' },
  invoker: {},
  cache: {},
  degrader: {},
  ingress: {},
};
const TRACEPARENT = `00-${'c'.repeat(32)}-${'d'.repeat(16)}-01`;

let env: TestBus;
let router: Consumption;
let seq = 0;

beforeAll(async () => {
  env = await startTestBus(config, { name: 'router' });
  router = await consumeEvents(env.bus, {
    consumer: Consumers.router,
    concurrency: 64,
    log: env.log,
    handler: onCacheMissed({ control: env.control, log: env.log }),
  });
});
afterAll(async () => {
  await router?.stop();
  await env?.stop();
});

async function miss(request: Partial<ChatRequest> = {}) {
  const requestId = `r-${++seq}`;
  const replyTo = `test.reply.${requestId}`;
  const inbox = env.bus.nc.subscribe(replyTo);
  const ctx = requestContext(chatRequest({ model: 'large', priority: 'realtime', ...request }), { replyTo });
  await publishEvent(env.bus.js, missed(requestId, 'acme', { ctx, key: `acme.${requestId}` }), { traceparent: TRACEPARENT });
  return { requestId, inbox };
}

async function replies(inbox: Awaited<ReturnType<typeof miss>>['inbox'], count: number): Promise<ChatReply[]> {
  const got: ChatReply[] = [];
  for await (const m of inbox) {
    got.push(m.json<ChatReply>());
    if (got.length === count) break;
  }
  inbox.unsubscribe();
  return got;
}

async function setLevel(level: number) {
  await putDegrade(env.buckets.control, { level, since: Date.now(), reason: 'test' });
  await eventually(() => expect(env.control.degrade().level).toBe(level), 2_000);
}

describe('router against NATS', () => {
  it('routes a miss to its candidates with the cache key and the trace', async () => {
    const seen = collectEvents(env.bus);
    const { requestId, inbox } = await miss();
    const { event, headers } = await seen.next('chat.routed', requestId);
    inbox.unsubscribe();
    seen.stop();
    expect(event.data).toMatchObject({
      tier: 'explicit',
      lane: 'realtime',
      degradeLevel: 0,
      cacheKey: `acme.${requestId}`,
      candidates: [
        { model: 'large', deployment: 'd2' },
        { model: 'small', deployment: 'd1' },
      ],
    });
    expect(event.data.maxTokens).toBeUndefined();
    expect(event.id).toBe(`${requestId}:chat.routed`);
    expect(headers?.get(Headers.traceparent)).toBe(TRACEPARENT);
  });

  it('follows degrade changes written to the control bucket without a restart', async () => {
    const seen = collectEvents(env.bus);
    try {
      await setLevel(1);
      const capped = await miss({ model: 'auto', maxOutputTokens: 1000 });
      capped.inbox.unsubscribe();
      expect((await seen.next('chat.routed', capped.requestId)).event.data).toMatchObject({ tier: 'cheap', maxTokens: 64, degradeLevel: 1 });

      await setLevel(2);
      const shed = await miss();
      expect((await seen.next('chat.shed', shed.requestId)).event).toMatchObject({
        reason: 'degraded to level 2 (cached only)',
        data: { code: 'service_busy', retryAfterMs: 3000, degradeLevel: 2 },
      });
      expect(await replies(shed.inbox, 1)).toEqual([
        { requestId: shed.requestId, error: { code: 'service_busy', status: 503, retryAfterMs: 3000, message: expect.any(String) } },
      ]);

      await setLevel(3);
      const fallback = await miss({ stream: true });
      const completed = (await seen.next('chat.completed', fallback.requestId)).event;
      expect(completed.data).toMatchObject({
        deployment: 'static-fallback',
        attempts: 0,
        upstreamLatencyMs: 0,
        answer: { model: 'static-fallback', usage: { total_tokens: 0 } },
      });
      expect(contentOf(completed.data.answer.body)).toBe('We are busy; back soon.');
      expect(completed.data.cacheKey).toBeUndefined();
      // streamed: a role-and-content chunk and a finish chunk, as an upstream streams, then the result
      const [chunk, , , result] = await replies(fallback.inbox, 4);
      expect(chunk).toMatchObject({
        requestId: fallback.requestId,
        model: 'static-fallback',
        chunk: { object: 'chat.completion.chunk', choices: [{ delta: { content: 'We are busy; back soon.' } }] },
      });
      expect(result).toMatchObject({ requestId: fallback.requestId, cached: false });
      expect(contentOf((result as { body: unknown }).body)).toBe('We are busy; back soon.');

      await setLevel(4);
      const maintenance = await miss();
      expect((await seen.next('chat.held', maintenance.requestId)).event.data.degradeLevel).toBe(4);
      expect((await replies(maintenance.inbox, 1))[0]).toMatchObject({ requestId: maintenance.requestId, status: 'held' });

      await setLevel(0);
      const back = await miss();
      back.inbox.unsubscribe();
      expect((await seen.next('chat.routed', back.requestId)).event.data.degradeLevel).toBe(0);
    } finally {
      seen.stop();
    }
  });
});
