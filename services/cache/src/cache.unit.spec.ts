import { describe, expect, it } from 'vitest';
import { STATIC_FALLBACK, type ChatChunk, type ChatResult } from '@sluice/contracts';
import { decideLookup, decideStore } from './cache.js';
import { asEntry, type CacheEntry } from './entry.js';
import { cacheKey } from './key.js';
import { admitted, completed, request } from './fixtures.js';

const NOW = 1_700_000_000_000;
const entry: CacheEntry = {
  answer: {
    model: 'gpt-4o-mini',
    message: { role: 'assistant', content: 'Paris.' },
    finishReason: 'stop',
    usage: { prompt_tokens: 20, completion_tokens: 2, total_tokens: 22 },
  },
  storedAt: NOW - 30_000,
  requestId: 'r0',
};

describe('decideLookup', () => {
  it('given no entry, when a request is admitted, then cache.missed carries the key and the estimate', () => {
    const key = cacheKey('acme', request());
    const { event, replies } = decideLookup(admitted('r1', 'acme', request()), key, undefined, NOW);
    expect(event).toMatchObject({ id: 'r1:cache.missed', type: 'cache.missed', tenant: 'acme', service: 'cache', at: NOW });
    expect(event.data).toMatchObject({ key, estimatedTokens: 42 });
    expect(replies).toEqual([]);
  });

  it('given a bypass, then cache.missed has no key and says why', () => {
    const { event } = decideLookup(admitted('r1', 'acme', request({ cache: 'skip' })), undefined, entry, NOW);
    expect(event.type).toBe('cache.missed');
    expect(event.data).not.toHaveProperty('key');
    expect(event.reason).toBe('cache bypassed on request');
  });

  it('given an entry, then cache.hit carries the answer and the client gets a cached result', () => {
    const key = cacheKey('acme', request());
    const { event, replies } = decideLookup(admitted('r2', 'acme', request(), '_INBOX.x'), key, entry, NOW);
    expect(event).toMatchObject({ id: 'r2:cache.hit', type: 'cache.hit', data: { key, answer: entry.answer, storedAt: entry.storedAt } });
    expect(event.reason).toContain('30s ago');
    expect(replies).toEqual<ChatResult[]>([
      {
        requestId: 'r2',
        model: 'gpt-4o-mini',
        message: entry.answer.message,
        finishReason: 'stop',
        usage: entry.answer.usage,
        cached: true,
        created: NOW / 1000,
      },
    ]);
  });

  it('given an entry and a streaming request, then one chunk precedes the result', () => {
    const { replies } = decideLookup(admitted('r3', 'acme', request({ stream: true })), 'acme.k', entry, NOW);
    expect(replies).toHaveLength(2);
    expect(replies[0]).toEqual<ChatChunk>({ requestId: 'r3', model: 'gpt-4o-mini', chunk: { role: 'assistant', content: 'Paris.' }, cached: true });
    expect(replies[1]).toMatchObject({ cached: true, finishReason: 'stop' });
  });
});

describe('decideStore', () => {
  const key = cacheKey('acme', request());

  it('stores a whole answer under its key and reports the bucket ttl', () => {
    const d = decideStore(completed('r1', 'acme', request(), key), 600, NOW);
    expect(d?.key).toBe(key);
    expect(d?.entry).toEqual({ answer: completed('r1', 'acme', request(), key).data.answer, storedAt: NOW, requestId: 'r1' });
    expect(d?.event).toMatchObject({ id: 'r1:cache.stored', tenant: 'acme', data: { key, model: 'gpt-4o-mini', ttlSeconds: 600 } });
  });

  it.each([
    ['no cache key', completed('r1', 'acme', request(), undefined)],
    ['a truncated answer', completed('r1', 'acme', request(), key, { finishReason: 'length' })],
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
    expect(asEntry(undefined)).toBeUndefined();
  });
});
