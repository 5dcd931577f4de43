import { describe, expect, it } from 'vitest';
import type { Control } from '@sluice/bus';
import { minimalConfig } from '@sluice/bus/testing';
import { ChatAssembler, parseConfig, STATIC_FALLBACK, type ChatChunk, type ChatRequest, type DegradeState, type SluiceEvent } from '@sluice/contracts';
import { chatRequest, contentOf, missed, requestContext } from '@sluice/contracts/testing';
import { createLogger } from '@sluice/telemetry';
import { onCacheMissed, onHeldReleased } from './handler.js';

// The router's handler as a decider: given the live config and degrade level, when a cache miss
// arrives, then the events it decides and the replies for the client. No NATS: the bus carries
// the decision out (consumeEvents), and router.int.spec.ts covers that path.
const config = parseConfig({
  ...minimalConfig([{ id: 'acme' }]),
  router: { degradedMaxTokens: 64, shedRetryAfterMs: 3000, staticFallback: 'We are busy; back soon.' },
});
const NOW = 1_700_000_000_000;
const log = createLogger('router-test', 'silent');

function given(level: number): Control {
  const degrade: DegradeState = { level, since: 0, reason: 'test' };
  return { config: () => config, degrade: () => degrade, canaries: () => ({}), onChange: () => undefined, stop: () => undefined };
}

function aMiss(request: Partial<ChatRequest> = {}, key = 'acme.k1') {
  const ctx = requestContext(chatRequest({ priority: 'realtime', ...request }), { replyTo: 'inbox.r1', receivedAt: NOW - 10, deadline: NOW + 60_000 });
  return missed('r1', 'acme', { ctx, key }, { at: NOW - 5 });
}

const decide = (level: number) => onCacheMissed({ control: given(level), log, now: () => NOW });

describe('router handler', () => {
  it('given full service, when a request misses the cache, then chat.routed and no reply', async () => {
    const d = await decide(0)(aMiss());
    expect(d.replies).toEqual([]);
    expect(d.events).toHaveLength(1);
    expect(d.events[0]).toMatchObject({
      id: 'r1:chat.routed',
      type: 'chat.routed',
      service: 'router',
      at: NOW,
      data: { lane: 'realtime', candidates: [{ model: 'm1', deployment: 'd1' }], degradeLevel: 0, cacheKey: 'acme.k1' },
    });
  });

  it('given level 1, then the route caps max tokens and says why', async () => {
    const d = await decide(1)(aMiss());
    expect(d.events[0]).toMatchObject({ type: 'chat.routed', data: { maxTokens: 64, degradeLevel: 1 } });
  });

  it('given level 2 (cached only), then chat.shed with a 503 for the client', async () => {
    const d = await decide(2)(aMiss());
    expect(d.events[0]).toMatchObject({ type: 'chat.shed', data: { code: 'service_busy', retryAfterMs: 3000, degradeLevel: 2, replyTo: 'inbox.r1' } });
    expect(d.replies).toEqual([
      { to: 'inbox.r1', reply: { requestId: 'r1', error: expect.objectContaining({ code: 'service_busy', status: 503, retryAfterMs: 3000 }) } },
    ]);
  });

  it('given level 3, then the static answer completes the request: the result, after chunks that add up to it when streaming', async () => {
    const whole = await decide(3)(aMiss());
    expect(whole.events[0]).toMatchObject({ type: 'chat.completed', data: { deployment: STATIC_FALLBACK, answer: { model: STATIC_FALLBACK } } });
    const completed = whole.events[0] as SluiceEvent<'chat.completed'>;
    expect(contentOf(completed.data.answer.body)).toBe('We are busy; back soon.');
    expect(whole.replies).toHaveLength(1);
    expect(whole.replies[0]!.reply).toMatchObject({
      requestId: 'r1',
      model: STATIC_FALLBACK,
      cached: false,
      body: { object: 'chat.completion', id: 'chatcmpl-r1' },
    });
    const streamed = await decide(3)(aMiss({ stream: true }));
    const kinds = streamed.replies.map((r) => ('chunk' in r.reply ? 'chunk' : 'result'));
    expect(kinds.at(-1)).toBe('result');
    const assembler = new ChatAssembler();
    for (const r of streamed.replies.slice(0, -1)) assembler.add((r.reply as ChatChunk).chunk);
    expect(contentOf(assembler.completion('r1', 0))).toBe('We are busy; back soon.');
  });

  it('given level 3 and a Responses request, then the static answer is a completed response', async () => {
    const whole = await decide(3)(aMiss({ endpoint: 'responses' }));
    expect(whole.replies[0]!.reply).toMatchObject({
      body: { object: 'response', status: 'completed', output: [{ type: 'message', content: [{ text: 'We are busy; back soon.' }] }] },
    });
  });

  it('given level 3 and an embeddings request, then it is shed: an embedding has no static answer', async () => {
    const d = await decide(3)(aMiss({ endpoint: 'embeddings' }));
    expect(d.events[0]).toMatchObject({ type: 'chat.shed', data: { code: 'service_busy', degradeLevel: 3 } });
  });

  it('given level 1, then the routed event carries no cache key: a degraded answer is not stored under the request', async () => {
    const d = await decide(1)(aMiss({}, 'acme.key'));
    expect(d.events[0]!.type).toBe('chat.routed');
    expect(d.events[0]!.data).not.toHaveProperty('cacheKey');
    const full = await decide(0)(aMiss({}, 'acme.key'));
    expect(full.events[0]!.data).toHaveProperty('cacheKey', 'acme.key');
  });

  it('given a spent downgrade budget, then chat.routed takes the cheapest tier, names the budget and carries no cache key', async () => {
    const miss = aMiss({ model: 'm1' }, 'acme.key');
    const d = await decide(0)({ ...miss, data: { ...miss.data, ctx: { ...miss.data.ctx, downgrade: { budget: 'daily' } } } });
    expect(d.events[0]).toMatchObject({ type: 'chat.routed', data: { tier: config.tiers[0]!.name, degradeLevel: 0 } });
    expect(d.events[0]!.reason).toMatch(/^budget daily is spent: cheapest tier/);
    expect(d.events[0]!.data).not.toHaveProperty('cacheKey');
  });

  it('given level 4 (maintenance), then chat.held with what routing needs later, and the held notice on the inbox and the result subject', async () => {
    const d = await decide(4)(aMiss());
    expect(d.events).toHaveLength(1);
    expect(d.events[0]).toMatchObject({
      id: 'r1:chat.held',
      type: 'chat.held',
      at: NOW,
      data: { key: 'acme.k1', estimatedTokens: 10, degradeLevel: 4, ctx: { replyTo: 'inbox.r1', deadline: NOW + 60_000 } },
    });
    expect(d.events[0]!.reason).toMatch(/^degraded to level 4 \(maintenance\)/);
    const notice = { requestId: 'r1', status: 'held', resultSubject: 'sluice.results.r1', at: NOW };
    expect(d.replies).toEqual([
      { to: 'inbox.r1', reply: notice },
      { to: 'sluice.results.r1', reply: notice },
    ]);
  });

  it('given level 4 and a request already answered on its result subject, then the notice goes there once', async () => {
    const miss = aMiss();
    const d = await decide(4)({ ...miss, data: { ...miss.data, ctx: { ...miss.data.ctx, replyTo: 'sluice.results.r1' } } });
    expect(d.replies.map((r) => r.to)).toEqual(['sluice.results.r1']);
  });
});

describe('router handler, held requests released', () => {
  const HELD_AT = NOW - 120_000;
  function aHeld() {
    const miss = aMiss({}, 'acme.k1');
    const ctx = { ...miss.data.ctx, receivedAt: HELD_AT - 10, deadline: HELD_AT + 29_990, coalesce: { revision: 7 } };
    return { ...miss, id: 'r1:chat.held', type: 'chat.held' as const, at: HELD_AT, data: { ctx, key: 'acme.k1', estimatedTokens: 10, degradeLevel: 4 } };
  }
  const release = (level: number) => onHeldReleased({ control: given(level), log, now: () => NOW });

  it('given level 0, when a held request is released, then chat.routed answering on its result subject with its deadline moved to now', async () => {
    const d = await release(0)(aHeld());
    expect(d.replies).toEqual([]);
    expect(d.events[0]).toMatchObject({ id: 'r1:chat.routed', type: 'chat.routed', at: NOW, data: { degradeLevel: 0, cacheKey: 'acme.k1' } });
    const ctx = (d.events[0] as SluiceEvent<'chat.routed'>).data.ctx;
    expect(ctx.replyTo).toBe('sluice.results.r1');
    // it had 30 s when ingress took it: it gets 30 s from the release
    expect(ctx.deadline).toBe(NOW + 30_000);
    expect(ctx.held).toEqual({ at: HELD_AT, releasedAt: NOW });
    // its coalescing ended when it was held
    expect(ctx.coalesce).toBeUndefined();
    expect(d.events[0]!.reason).toMatch(/^released after 120000 ms held; model m1 named by the client/);
  });

  it('given a model removed while it was held, then chat.shed answered on the result subject', async () => {
    const held = aHeld();
    const d = await release(0)({ ...held, data: { ...held.data, ctx: { ...held.data.ctx, request: { ...held.data.ctx.request, model: 'gone' } } } });
    expect(d.events[0]).toMatchObject({ type: 'chat.shed', data: { code: 'model_not_found', replyTo: 'sluice.results.r1' } });
    expect(d.replies).toEqual([
      { to: 'sluice.results.r1', reply: { requestId: 'r1', error: expect.objectContaining({ code: 'model_not_found', status: 404 }) } },
    ]);
  });

  it('given the level rose again before it ran, then nothing is decided and it comes back later', async () => {
    for (const level of [2, 3, 4]) {
      const d = await release(level)(aHeld());
      expect(d.events).toEqual([]);
      expect(d.redeliverInMs).toBeGreaterThan(0);
    }
  });
});
