import { describe, expect, it } from 'vitest';
import type { SemanticEntry } from './entry.js';
import { SemanticIndex } from './index.js';

const NOW = 1_700_000_000_000;
const DIMS = 32;
const partitionOf = (tenant: string) => `${tenant}//text-embedding-3-small/${DIMS}/${'0'.repeat(64)}`;

/** Deterministic unit vectors (mulberry32), so a failure reproduces. */
function vectors(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
  return {
    random: () => unit(Float32Array.from({ length: DIMS }, next)),
    /** A vector close to `v` (cosine ~0.99). */
    near: (v: Float32Array) => unit(v.map((x) => x + next() * 0.05)),
  };
}

function unit(v: Float32Array): Float32Array {
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

function entry(id: string, tenant: string, vector: Float32Array, expiresAt = NOW + 60_000): SemanticEntry {
  return {
    tenant,
    partition: partitionOf(tenant),
    text: `question ${id}`,
    vector,
    cacheKey: `${tenant}.${id}`,
    requestId: `r-${id}`,
    storedAt: NOW,
    expiresAt,
  };
}

/** An index holding `n` random entries of tenant acme under ids acme.e0.. */
function filled(n: number, hnswAbove: number, seed = 1) {
  const gen = vectors(seed);
  const index = new SemanticIndex({ hnswAbove });
  const stored = Array.from({ length: n }, (_, i) => entry(`e${i}`, 'acme', gen.random()));
  for (const e of stored) index.upsert(e.cacheKey, e);
  return { index, stored, gen };
}

const idsOf = (matches: Array<{ id: string }>) => matches.map((m) => m.id);

describe('SemanticIndex', () => {
  it('given entries, when searching near one of them, then it comes first with its similarity, the entry and its vector', () => {
    const { index, stored, gen } = filled(50, 1000);
    const target = stored[17]!;
    const [best, ...rest] = index.search(partitionOf('acme'), gen.near(target.vector), 4, NOW);
    expect(best!.id).toBe('acme.e17');
    expect(best!.similarity).toBeGreaterThan(0.95);
    expect(best!.entry).toEqual(target);
    expect(rest).toHaveLength(3);
    expect(rest.every((m) => m.similarity <= best!.similarity)).toBe(true);
  });

  it('given a query that is not unit length, then similarities are still cosines', () => {
    const { index, stored } = filled(10, 1000);
    const [best] = index.search(
      partitionOf('acme'),
      stored[3]!.vector.map((x) => x * 7),
      1,
      NOW,
    );
    expect(best!.similarity).toBeCloseTo(1, 5);
  });

  it("given tenant A's entry, when tenant B searches its own partition with the same vector, then A's entry is never returned", () => {
    const gen = vectors(2);
    const index = new SemanticIndex();
    const v = gen.random();
    index.upsert('a.1', entry('1', 'a', v));
    index.upsert('b.2', entry('2', 'b', gen.random()));
    expect(idsOf(index.search(partitionOf('b'), v, 4, NOW))).toEqual(['b.2']);
    expect(index.search(partitionOf('c'), v, 4, NOW)).toEqual([]);
    expect(idsOf(index.search(partitionOf('a'), v, 4, NOW))).toEqual(['a.1']);
  });

  it('given an expired entry nearest the query, then the search skips it and sweep drops it', () => {
    const gen = vectors(3);
    const index = new SemanticIndex();
    const v = gen.random();
    index.upsert('acme.old', entry('old', 'acme', v, NOW));
    index.upsert('acme.new', entry('new', 'acme', gen.near(v)));
    index.upsert('acme.far', entry('far', 'acme', gen.random()));
    expect(idsOf(index.search(partitionOf('acme'), v, 1, NOW))).toEqual(['acme.new']);
    expect(idsOf(index.search(partitionOf('acme'), v, 4, NOW - 1))[0]).toBe('acme.old');
    expect(index.sweep(NOW)).toBe(1);
    expect(index.size()).toBe(2);
  });

  it('given an id upserted again, then it holds the new entry only', () => {
    const gen = vectors(4);
    const index = new SemanticIndex();
    const first = gen.random();
    const second = gen.random();
    index.upsert('acme.x', entry('x', 'acme', first));
    index.upsert('acme.x', { ...entry('x', 'acme', second), requestId: 'r-later' });
    expect(index.size()).toBe(1);
    const [m] = index.search(partitionOf('acme'), second, 4, NOW);
    expect(m).toMatchObject({ id: 'acme.x', entry: { requestId: 'r-later' } });
    expect(m!.similarity).toBeCloseTo(1, 5);
  });

  it('given a vector of another length than its partition, then the upsert is refused and nothing is kept under its id', () => {
    const index = new SemanticIndex();
    index.upsert('acme.a', entry('a', 'acme', vectors(5).random()));
    expect(index.upsert('acme.b', entry('b', 'acme', unit(new Float32Array(DIMS + 1).fill(1))))).toBe(false);
    expect(index.size()).toBe(1);
  });

  it.each([
    ['scanned', 1000],
    ['in an HNSW graph', 8],
  ])('given entries %s, when some are removed, then they are never found again and the others still are', async (_mode, hnswAbove) => {
    const { index, stored } = filled(40, hnswAbove);
    await index.whenBuilt();
    expect(index.stats().graphs).toBe(hnswAbove < 40 ? 1 : 0);
    for (const e of stored.slice(0, 10)) index.remove(e.cacheKey);
    await index.whenBuilt();
    expect(index.size()).toBe(30);
    for (const e of stored.slice(0, 10)) expect(idsOf(index.search(partitionOf('acme'), e.vector, 4, NOW))).not.toContain(e.cacheKey);
    for (const e of stored.slice(10)) expect(idsOf(index.search(partitionOf('acme'), e.vector, 1, NOW))).toEqual([e.cacheKey]);
  });

  it('given a partition growing past the HNSW size, then results are the same before, during and after the graph is built', async () => {
    const { index, stored, gen } = filled(64, 64, 6);
    const queries = stored.map((e) => gen.near(e.vector));
    const before = queries.map((q) => idsOf(index.search(partitionOf('acme'), q, 1, NOW)));
    expect(before.map((ids) => ids[0])).toEqual(stored.map((e) => e.cacheKey));
    const extra = entry('e64', 'acme', gen.random());
    index.upsert(extra.cacheKey, extra);
    expect(index.stats()).toMatchObject({ graphs: 1, pending: 65 });
    expect(queries.map((q) => idsOf(index.search(partitionOf('acme'), q, 1, NOW)))).toEqual(before);
    await index.whenBuilt();
    expect(index.stats()).toMatchObject({ entries: 65, graphs: 1, pending: 0 });
    expect(queries.map((q) => idsOf(index.search(partitionOf('acme'), q, 1, NOW)))).toEqual(before);
    expect(idsOf(index.search(partitionOf('acme'), extra.vector, 1, NOW))).toEqual(['acme.e64']);
  });

  it('given a built graph, then new entries are found at once (scanned beside the graph until added to it)', async () => {
    const { index, gen } = filled(20, 8, 7);
    await index.whenBuilt();
    const late = entry('late', 'acme', gen.random());
    index.upsert(late.cacheKey, late);
    expect(index.stats().pending).toBe(1);
    expect(idsOf(index.search(partitionOf('acme'), late.vector, 1, NOW))).toEqual(['acme.late']);
    await index.whenBuilt();
    expect(idsOf(index.search(partitionOf('acme'), late.vector, 1, NOW))).toEqual(['acme.late']);
  });

  it('given a graph, when the partition shrinks to half the HNSW size, then it is scanned again and still answers', async () => {
    const { index, stored } = filled(20, 8, 8);
    await index.whenBuilt();
    for (const e of stored.slice(0, 16)) index.remove(e.cacheKey);
    expect(index.stats().graphs).toBe(0);
    for (const e of stored.slice(16)) expect(idsOf(index.search(partitionOf('acme'), e.vector, 1, NOW))).toEqual([e.cacheKey]);
  });

  it('given entries, then bytes() grows with them and an emptied partition is gone', () => {
    const { index, stored } = filled(30, 1000, 9);
    expect(index.bytes()).toBeGreaterThan(30 * DIMS * 4);
    for (const e of stored) index.remove(e.cacheKey);
    expect(index.stats()).toMatchObject({ entries: 0, partitions: 0 });
    expect(index.bytes()).toBe(0);
  });
});
