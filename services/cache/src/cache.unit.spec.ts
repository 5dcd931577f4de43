import { describe, expect, it } from 'vitest';
import { ChatAssembler, STATIC_FALLBACK, type ChatChunk, type ChatResult } from '@sluice/contracts';
import { contentOf } from '@sluice/contracts/testing';
import { decideLookup, decideStore } from './cache.js';
import { asEntry, type CacheEntry } from './entry.js';
import { admitted, completed, keyOf, request, TOOL_CALL } from './fixtures.js';

const NOW = 1_700_000_000_000;
const key = keyOf('acme', 'capital of France');
const entryOf = (e: ReturnType<typeof completed>): CacheEntry => ({ answer: e.data.answer, storedAt: NOW - 30_000, requestId: 'r0' });
const entry = entryOf(completed('r0', 'acme', request(), key));

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
    expect(replies).toEqual<ChatResult[]>([{ requestId: 'r2', model: 'gpt-4o-mini', body, usage: entry.answer.usage, cached: true, created: NOW / 1000 }]);
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
    const d = decideStore(completed('r1', 'acme', request(), key), 600, NOW);
    expect(d?.key).toBe(key);
    expect(d?.entry).toEqual({ answer: completed('r1', 'acme', request(), key).data.answer, storedAt: NOW, requestId: 'r1' });
    expect(d?.event).toMatchObject({ id: 'r1:cache.stored', tenant: 'acme', data: { key, model: 'gpt-4o-mini', ttlSeconds: 600 } });
  });

  it('stores an answer that ended in tool calls (a whole answer)', () => {
    const d = decideStore(completed('r1', 'acme', request(), key, { toolCalls: true }), 600, NOW);
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
    expect(decideStore(event, 600, NOW)).toBeUndefined();
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
