import { describe, expect, it } from 'vitest';
import { STATIC_FALLBACK } from '@sluice/contracts';
import { measure, type CommittedEvent } from './metrics-events.js';

const request: NonNullable<CommittedEvent['request']> = {
  requestedModel: 'auto',
  model: 'gpt-4o-mini',
  deployment: 'sim',
  lane: 'standard',
  variant: null,
  feature: 'chat',
  receivedAt: 1_000,
  costUsd: '0.00045',
  savedUsd: '0',
  embeddingUsd: '0',
  cacheKind: null,
};

/** A committed event of acme's request, 250 ms after its receipt, its stage's input 200 ms before it. */
function committed(type: string, service: string, over: Partial<CommittedEvent> = {}): CommittedEvent {
  return { seq: 9, type, tenant: 'acme', service, at: 1_250, layer: null, code: null, embeddingModel: null, request, previous: null, ...over };
}

const of = (e: CommittedEvent, instrument: string) => measure(e).filter((m) => m.instrument === instrument);

describe('measure', () => {
  it('given a completion after its routing, counts the request, its duration, the invoker hop and its cost', () => {
    const e = committed('chat.completed', 'invoker', { previous: { type: 'chat.routed', at: 1_050 } });
    expect(measure(e)).toEqual([
      { instrument: 'sluice.hop.duration', value: 0.2, attributes: { 'sluice.hop': 'invoker' } },
      {
        instrument: 'sluice.requests',
        value: 1,
        attributes: { 'sluice.outcome': 'completed', 'sluice.tenant': 'acme', 'gen_ai.request.model': 'auto', 'sluice.lane': 'standard' },
      },
      { instrument: 'sluice.request.duration', value: 0.25, attributes: { 'sluice.outcome': 'completed', 'sluice.tenant': 'acme', 'sluice.lane': 'standard' } },
      {
        instrument: 'sluice.cost',
        value: 0.00045,
        attributes: { 'sluice.tenant': 'acme', 'gen_ai.request.model': 'auto', 'gen_ai.response.model': 'gpt-4o-mini', 'sluice.feature': 'chat' },
      },
    ]);
  });

  it("given a completion the static fallback answered (degrade level 3), counts it as degraded and as the router's hop", () => {
    const e = committed('chat.completed', 'router', {
      previous: { type: 'cache.missed', at: 1_248 },
      request: { ...request, model: STATIC_FALLBACK, deployment: STATIC_FALLBACK, costUsd: '0' },
    });
    expect(of(e, 'sluice.hop.duration')[0]).toMatchObject({ value: 0.002, attributes: { 'sluice.hop': 'router' } });
    expect(of(e, 'sluice.requests')[0]!.attributes['sluice.outcome']).toBe('degraded');
    expect(of(e, 'sluice.request.duration')[0]!.attributes['sluice.outcome']).toBe('degraded');
  });

  it('given a canary variant, labels the request with it', () => {
    const e = committed('chat.failed', 'invoker', { request: { ...request, variant: 'candidate' } });
    expect(of(e, 'sluice.requests')[0]!.attributes).toMatchObject({ 'sluice.outcome': 'failed', 'sluice.variant': 'candidate' });
  });

  it('given a throttle, counts it by layer; given a budget refusal, as the budget layer; another rejection is no throttle', () => {
    const throttled = committed('chat.throttled', 'limiter', { layer: 'user', previous: { type: 'chat.requested', at: 1_248 } });
    expect(of(throttled, 'sluice.throttles')).toEqual([
      { instrument: 'sluice.throttles', value: 1, attributes: { 'sluice.layer': 'user', 'sluice.tenant': 'acme' } },
    ]);
    expect(of(throttled, 'sluice.hop.duration')[0]).toMatchObject({ value: 0.002, attributes: { 'sluice.hop': 'limiter' } });

    const budget = committed('chat.rejected', 'limiter', { code: 'insufficient_quota', previous: { type: 'chat.requested', at: 1_249 } });
    expect(of(budget, 'sluice.throttles')[0]!.attributes['sluice.layer']).toBe('budget');
    expect(of(budget, 'sluice.requests')[0]!.attributes['sluice.outcome']).toBe('rejected');

    const badKey = committed('chat.rejected', 'ingress', { code: 'invalid_api_key', request: { ...request, lane: null, requestedModel: 'gpt-4o' } });
    expect(of(badKey, 'sluice.throttles')).toEqual([]);
    expect(of(badKey, 'sluice.hop.duration')).toEqual([]);
    expect(of(badKey, 'sluice.requests')[0]!.attributes).toEqual({ 'sluice.outcome': 'rejected', 'sluice.tenant': 'acme', 'gen_ai.request.model': 'gpt-4o' });
  });

  it('given a semantic hit that paid for an embedding, counts the hit, its savings and the embedding cost', () => {
    const hit = committed('cache.hit', 'cache', {
      embeddingModel: 'text-embedding-3-small',
      previous: { type: 'chat.admitted', at: 1_240 },
      request: { ...request, cacheKind: 'semantic', costUsd: '0', savedUsd: '0.015', embeddingUsd: '0.0000008' },
    });
    expect(of(hit, 'sluice.cache.hits')).toEqual([
      { instrument: 'sluice.cache.hits', value: 1, attributes: { 'sluice.cache.kind': 'semantic', 'sluice.tenant': 'acme' } },
    ]);
    expect(of(hit, 'sluice.cache.savings')[0]!.value).toBe(0.015);
    expect(of(hit, 'sluice.cost')).toEqual([
      {
        instrument: 'sluice.cost',
        value: 0.0000008,
        attributes: { 'sluice.tenant': 'acme', 'gen_ai.request.model': 'auto', 'gen_ai.response.model': 'text-embedding-3-small', 'sluice.feature': 'chat' },
      },
    ]);
    expect(of(hit, 'sluice.hop.duration')[0]).toMatchObject({ value: 0.01, attributes: { 'sluice.hop': 'cache' } });
  });

  it('given a coalesced answer, counts a hit but no cache hop (it waited for its leader)', () => {
    const e = committed('cache.coalesced', 'cache', { previous: { type: 'chat.admitted', at: 1_000 }, request: { ...request, cacheKind: 'coalesced' } });
    expect(of(e, 'sluice.cache.hits')).toHaveLength(1);
    expect(of(e, 'sluice.hop.duration')).toEqual([]);
  });

  it("given a held request's routing, records no router hop; given a routing after the miss, does", () => {
    expect(measure(committed('chat.routed', 'router', { previous: { type: 'chat.held', at: 1_000 } }))).toEqual([]);
    expect(measure(committed('chat.routed', 'router', { previous: { type: 'cache.missed', at: 1_249 } }))).toEqual([
      { instrument: 'sluice.hop.duration', value: 0.001, attributes: { 'sluice.hop': 'router' } },
    ]);
  });

  it('given clocks that disagree, records no negative duration', () => {
    const e = committed('chat.admitted', 'limiter', { previous: { type: 'chat.requested', at: 1_300 } });
    expect(measure(e)).toEqual([{ instrument: 'sluice.hop.duration', value: 0, attributes: { 'sluice.hop': 'limiter' } }]);
  });
});
