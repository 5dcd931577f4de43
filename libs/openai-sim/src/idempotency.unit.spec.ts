import { describe, expect, it } from 'vitest';
import { IdempotencyStore } from './idempotency.js';

const at = (t: number) => () => t;

describe('IdempotencyStore', () => {
  it('keeps a completed answer and replays it for the same fingerprint only', async () => {
    const store = new IdempotencyStore<string>();
    const first = await store.claim('k', 'body-1', at(0));
    if (first.kind !== 'fresh') throw new Error(first.kind);
    first.complete('answer');
    expect(await store.claim('k', 'body-1', at(1))).toEqual({ kind: 'replay', answer: 'answer' });
    expect(await store.claim('k', 'body-2', at(1))).toEqual({ kind: 'mismatch' });
  });

  it('forgets a released claim, so the retry is fresh', async () => {
    const store = new IdempotencyStore<string>();
    const first = await store.claim('k', 'b', at(0));
    if (first.kind !== 'fresh') throw new Error(first.kind);
    first.release();
    expect((await store.claim('k', 'b', at(0))).kind).toBe('fresh');
  });

  it('ignores release after complete', async () => {
    const store = new IdempotencyStore<string>();
    const first = await store.claim('k', 'b', at(0));
    if (first.kind !== 'fresh') throw new Error(first.kind);
    first.complete('a');
    first.release();
    expect(await store.claim('k', 'b', at(0))).toEqual({ kind: 'replay', answer: 'a' });
  });

  it('serves afresh after the TTL', async () => {
    const store = new IdempotencyStore<string>(1000);
    const first = await store.claim('k', 'b', at(0));
    if (first.kind !== 'fresh') throw new Error(first.kind);
    first.complete('a');
    expect((await store.claim('k', 'b', at(1000))).kind).toBe('replay');
    expect((await store.claim('k', 'b', at(1001))).kind).toBe('fresh');
  });

  it('drops the oldest answers beyond its capacity', async () => {
    const store = new IdempotencyStore<number>(60_000, 2);
    for (const n of [1, 2, 3]) {
      const c = await store.claim(`k${n}`, 'b', at(n));
      if (c.kind !== 'fresh') throw new Error(c.kind);
      c.complete(n);
    }
    expect(store.size).toBe(2);
    expect((await store.claim('k1', 'b', at(4))).kind).toBe('fresh');
    expect(await store.claim('k3', 'b', at(4))).toEqual({ kind: 'replay', answer: 3 });
  });

  it('makes a repeat wait for the claim in flight and then replays its answer', async () => {
    const store = new IdempotencyStore<string>();
    const first = await store.claim('k', 'b', at(0));
    if (first.kind !== 'fresh') throw new Error(first.kind);
    let settled = false;
    const repeat = store.claim('k', 'b', at(0)).then((c) => ((settled = true), c));
    await Promise.resolve();
    expect(settled).toBe(false);
    first.complete('a');
    expect(await repeat).toEqual({ kind: 'replay', answer: 'a' });
  });
});
