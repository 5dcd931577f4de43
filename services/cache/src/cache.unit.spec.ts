import { describe, expect, it } from 'vitest';
import { ChatAssembler, STATIC_FALLBACK, type CachePolicy, type ChatChunk, type ChatResult } from '@sluice/contracts';
import { contentOf } from '@sluice/contracts/testing';
import { decideCoalesced, decideLookup, decideMiss, decideSemanticHit, decideStore, unstorable } from './cache.js';
import { asEntry, type CacheEntry } from './entry.js';
import { admitted, completed, keyOf, request, TOOL_CALL } from './fixtures.js';

const NOW = 1_700_000_000_000;
const key = keyOf('acme', 'capital of France');
const entryOf = (e: ReturnType<typeof completed>): CacheEntry => ({ answer: e.data.answer, storedAt: NOW - 30_000, requestId: 'r0' });
const entry = entryOf(completed('r0', 'acme', request(), key));
const POLICY: CachePolicy = { length: 'skip', toolCalls: 'store', multipleChoices: 'store' };

describe('decideLookup', () => {
  it('given no entry, when a request is admitted, then cache.missed carries the key and the estimate', () => {
    const { event, replies } = decideLookup(admitted('r1', 'acme', request()), undefined, NOW);
    expect(event).toMatchObject({ id: 'r1:cache.missed', type: 'cache.missed', tenant: 'acme', service: 'cache', at: NOW });
    expect(event.data).toMatchObject({ key, estimatedTokens: 42 });
    expect(replies).toEqual([]);
  });

  it('given a request without a key (cache: skip), then cache.missed has no key and says why', () => {
    const { event } = decideLookup(admitted('r1', 'acme', request({ cache: 'skip', cacheKey: undefined })), entry, NOW);
    expect(event.type).toBe('cache.missed');
    expect(event.data).not.toHaveProperty('key');
    expect(event.reason).toBe('cache bypassed on request');
  });

  it("given an entry, then cache.hit carries the answer and the client gets the body whole, under its own request's id", () => {
    const { event, replies } = decideLookup(admitted('r2', 'acme', request(), '_INBOX.x'), entry, NOW);
    expect(event).toMatchObject({ id: 'r2:cache.hit', type: 'cache.hit', data: { key, answer: entry.answer, storedAt: entry.storedAt } });
    expect(event.reason).toContain('30s ago');
    const body = { ...(entry.answer.body as object), id: 'chatcmpl-r2', created: NOW / 1000 };
    expect(replies).toEqual<ChatResult[]>([
      { requestId: 'r2', model: 'gpt-4o-mini', body, usage: entry.answer.usage, cached: true, cache: 'hit', created: NOW / 1000 },
    ]);
  });

  it('given an entry with tool calls and a streaming request, then chunks that add up to the same answer precede the result', () => {
    const tools = entryOf(completed('r0', 'acme', request(), key, { toolCalls: true }));
    const ctxLimits = { requests: { limit: 10, remaining: 9, resetMs: 6000 }, tokens: { limit: 100, remaining: 50, resetMs: 30_000 } };
    const a = admitted('r3', 'acme', request({ stream: true }));
    a.data.ctx.rateLimit = ctxLimits;
    const { replies } = decideLookup(a, tools, NOW);
    const chunks = replies.slice(0, -1) as ChatChunk[];
    expect(chunks.length).toBeGreaterThan(2);
    expect(chunks.every((c) => c.cached === true && c.requestId === 'r3')).toBe(true);
    // the limits go with the first chunk, when ingress writes its headers
    expect(chunks[0]!.rateLimit).toEqual(ctxLimits);
    const assembled = new ChatAssembler();
    for (const c of chunks) assembled.add(c.chunk);
    const whole = assembled.completion('r3', NOW / 1000) as { choices: Array<{ message: { tool_calls: unknown[] }; finish_reason: string }> };
    expect(whole.choices[0]!.message.tool_calls).toEqual([TOOL_CALL]);
    expect(whole.choices[0]!.finish_reason).toBe('tool_calls');
    expect(replies.at(-1)).toMatchObject({ cached: true, rateLimit: ctxLimits, usage: tools.answer.usage });
  });
});

describe('decideStore', () => {
  it('stores a whole answer under its key and reports the bucket ttl', () => {
    const d = decideStore(completed('r1', 'acme', request(), key), POLICY, 600, NOW);
    expect(d?.key).toBe(key);
    const expiresAt = NOW + 600_000;
    expect(d?.entry).toEqual({ answer: completed('r1', 'acme', request(), key).data.answer, storedAt: NOW, requestId: 'r1', expiresAt });
    expect(d?.event).toMatchObject({ id: 'r1:cache.stored', tenant: 'acme', data: { key, model: 'gpt-4o-mini', ttlSeconds: 600, expiresAt } });
  });

  it('stores an answer that ended in tool calls (a whole answer)', () => {
    const d = decideStore(completed('r1', 'acme', request(), key, { toolCalls: true }), POLICY, 600, NOW);
    expect(contentOf(d?.entry.answer.body)).toBeNull();
  });

  it.each([
    ['no cache key (none, or a degraded route)', completed('r1', 'acme', request(), undefined)],
    ['a truncated answer', completed('r1', 'acme', request(), key, { finishReason: 'length' })],
    ['a filtered answer', completed('r1', 'acme', request(), key, { finishReason: 'content_filter' })],
    ['a static fallback', completed('r1', 'acme', request(), key, { deployment: STATIC_FALLBACK })],
    ['a bypassing request', completed('r1', 'acme', request({ cache: 'skip' }), key)],
    ["another tenant's key", completed('r1', 'globex', request(), key)],
  ])('does not store %s', (_, event) => {
    expect(decideStore(event, POLICY, 600, NOW)).toBeUndefined();
  });

  it('follows the tenant policy: length stored when asked, tool calls and several choices skipped when asked', () => {
    const cut = completed('r1', 'acme', request(), key, { finishReason: 'length' });
    expect(unstorable(cut, POLICY)).toContain('policy length: skip');
    expect(decideStore(cut, { ...POLICY, length: 'store' }, 600, NOW)?.key).toBe(key);
    const tools = completed('r1', 'acme', request(), key, { toolCalls: true });
    expect(unstorable(tools, { ...POLICY, toolCalls: 'skip' })).toContain('toolCalls: skip');
    const two = completed('r1', 'acme', request(), key);
    const body = two.data.answer.body as { choices: unknown[] };
    body.choices.push({ ...(body.choices[0] as object), index: 1 });
    expect(decideStore(two, POLICY, 600, NOW)?.key).toBe(key);
    expect(unstorable(two, { ...POLICY, multipleChoices: 'skip' })).toContain('multipleChoices: skip');
    // a content filter is never whole, whatever the policy
    expect(decideStore(completed('r1', 'acme', request(), key, { finishReason: 'content_filter' }), { ...POLICY, length: 'store' }, 600, NOW)).toBeUndefined();
  });
});

describe('expiry, semantic hits, coalescing and misses', () => {
  it('given an entry past its own expiresAt, then the lookup misses and says when it expired', () => {
    const { event } = decideLookup(admitted('r1', 'acme', request()), { ...entry, expiresAt: NOW - 5_000 }, NOW);
    expect(event.type).toBe('cache.missed');
    expect(event.reason).toBe('the cached answer of request r0 expired 5s ago');
    expect(decideLookup(admitted('r1', 'acme', request()), { ...entry, expiresAt: NOW + 1 }, NOW).event.type).toBe('cache.hit');
  });

  it('given a semantic match, then cache.hit names the kind, the similarity and the matched request, and the replies say semantic', () => {
    const other = keyOf('acme', 'the capital of France?');
    const embedding = { model: 'text-embedding-3-small', deployment: 'sim', usage: { prompt_tokens: 5, total_tokens: 5 }, latencyMs: 2 };
    const { event, replies } = decideSemanticHit(admitted('r4', 'acme', request()), { key: other, entry, similarity: 0.93456, threshold: 0.9 }, embedding, NOW);
    expect(event).toMatchObject({ type: 'cache.hit', data: { kind: 'semantic', key: other, similarity: 0.9346, matchedRequestId: 'r0', embedding } });
    expect(event.reason).toContain('similarity 0.935 (threshold 0.9) to request r0');
    expect(replies).toEqual([expect.objectContaining({ requestId: 'r4', cached: true, cache: 'semantic' })]);
  });

  it("given a leader's answer, then cache.coalesced names the leader and each follower gets its own request id, streamed when it asked", () => {
    const a = admitted('r5', 'acme', request({ stream: true }));
    const { event, replies } = decideCoalesced(a, { leaderRequestId: 'r0', answer: entry.answer, waitedMs: 812.4 }, NOW);
    expect(event).toMatchObject({ id: 'r5:cache.coalesced', data: { key, leaderRequestId: 'r0', waitedMs: 812, answer: entry.answer } });
    expect(replies.length).toBeGreaterThan(1);
    expect(replies.every((r) => r.requestId === 'r5' && 'cache' in r && r.cache === 'coalesced')).toBe(true);
  });

  it('given a leader, then cache.missed carries its revision in the context for the store, and what the semantic step found', () => {
    const event = decideMiss(admitted('r6', 'acme', request()), { reason: 'no match', leads: 7, semantic: { similarity: 0.812345, threshold: 0.9 } }, NOW);
    expect(event.data).toMatchObject({ key, leads: true, semantic: { similarity: 0.8123, threshold: 0.9 } });
    expect(event.data.ctx.coalesce).toEqual({ revision: 7 });
    expect(decideMiss(admitted('r7', 'acme', request()), { reason: 'no match' }, NOW).data).not.toHaveProperty('leads');
  });
});

describe('the price recorded on a cached answer', () => {
  const models = { 'gpt-4o-mini': { deployments: ['sim'], fallback: [], price: { inputPerMTok: 0.15, outputPerMTok: 0.6 } } } as never;
  const PRICE = { inputPerMTok: 0.15, outputPerMTok: 0.6, source: 'config' };

  it("given the live config's models, then every kind of hit records the answering model's price (what the ledger saves at)", () => {
    expect(decideLookup(admitted('r1', 'acme', request()), entry, NOW, models).event.data).toMatchObject({ price: PRICE });
    const other = keyOf('acme', 'the capital of France?');
    const semantic = decideSemanticHit(admitted('r2', 'acme', request()), { key: other, entry, similarity: 0.95, threshold: 0.9 }, undefined, NOW, models);
    expect(semantic.event.data).toMatchObject({ price: PRICE });
    const coalesced = decideCoalesced(admitted('r3', 'acme', request()), { leaderRequestId: 'r0', answer: entry.answer, waitedMs: 5 }, NOW, models);
    expect(coalesced.event.data).toMatchObject({ price: PRICE });
  });

  it('given no models, then no price is recorded (the ledger saves at its own config); a miss never carries one', () => {
    expect(decideLookup(admitted('r1', 'acme', request()), entry, NOW).event.data).not.toHaveProperty('price');
    expect(decideLookup(admitted('r1', 'acme', request()), undefined, NOW, models).event.data).not.toHaveProperty('price');
  });
});

describe('asEntry', () => {
  it('accepts a stored entry and refuses other shapes', () => {
    expect(asEntry(JSON.parse(JSON.stringify(entry)))).toEqual(entry);
    expect(asEntry({ answer: 'Paris.', storedAt: 1, requestId: 'r' })).toBeUndefined();
    // an entry of the format before bodies passed through whole is a miss
    expect(
      asEntry({
        answer: { model: 'm', message: { role: 'assistant', content: 'x' }, finishReason: 'stop', usage: entry.answer.usage },
        storedAt: 1,
        requestId: 'r',
      }),
    ).toBeUndefined();
    expect(asEntry(undefined)).toBeUndefined();
  });
});
