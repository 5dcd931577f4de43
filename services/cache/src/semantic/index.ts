import { exactSearch, Index, MetricKind, ScalarKind } from 'usearch';
import type { SemanticEntry } from './entry.js';

/** One search result: the bucket key of the entry, the entry, and its cosine similarity to the query (-1..1). */
export interface SemanticMatch {
  id: string;
  entry: SemanticEntry;
  similarity: number;
}

export interface SemanticIndexOptions {
  /**
   * A partition with more entries than this gets an HNSW graph; at or below it, and while the
   * graph is being built, it is scanned exactly. Default 4096 (see DEFAULT_HNSW_ABOVE).
   */
  hnswAbove?: number;
  /** HNSW connectivity (M). Default 16. */
  connectivity?: number;
  /** Milliseconds of graph building per event-loop turn, so building never stalls lookups for long. Default 8. */
  buildSliceMs?: number;
}

/**
 * Where exact scanning stops paying. Measured (npm run bench:semantic, two loaded cores, the
 * simulator's 256-d embeddings of generated questions, k=4): the exact scan's p50 grows ~0.045 ms
 * per 1k entries (0.05 ms at 1k, 0.18 at 4k, 0.73 at 16k, 5.9 at 100k) while the graph's stays
 * 0.05-0.24 ms from 1k to 100k, so on latency alone they cross near 1k. But a graph costs a build of
 * ~0.1-0.35 ms per vector on the event loop (400 ms at 4k, 34 s at 100k), ~1.3 kB more memory per
 * entry (its own copy of the vector plus links), and some recall (the paraphrase's source in the
 * top 4: 99.1 % at 16k against 100 % scanned). At 4k the scan's 0.18 ms is noise beside the embedding
 * call, so the graph starts past it. It is dropped again below half (hysteresis, so a partition
 * near the line does not rebuild on every put and expiry).
 */
const DEFAULT_HNSW_ABOVE = 4096;
const EXPANSION_ADD = 128;
const EXPANSION_SEARCH = 64;
/** Vectors added to a graph per native call while building (one thread: the service has other work). */
const BUILD_BATCH = 64;
/** A graph whose removed vectors outnumber its live ones is rebuilt: usearch only tombstones removals. */
const REBUILD_WHEN_REMOVED_OVER_LIVE = 1;
/** Bytes per entry besides the vector and the strings: maps, arrays, object headers (an estimate). */
const ENTRY_OVERHEAD_BYTES = 200;

type Meta = Omit<SemanticEntry, 'vector'>;

/** An HNSW graph over some of a partition's entries; `pending` ones are not in it yet and are scanned beside it. */
interface Graph {
  index: Index;
  keyOf: Map<string, bigint>;
  idOf: Map<bigint, string>;
  nextKey: bigint;
  pending: Set<string>;
  removed: number;
}

/**
 * The entries of one partition: vectors packed in one Float32Array (slot i at i * dimensions),
 * so an exact scan is one native call over contiguous memory; a removal moves the last slot in.
 */
interface Partition {
  name: string;
  dimensions: number;
  count: number;
  vectors: Float32Array;
  ids: string[];
  metas: Meta[];
  slotOf: Map<string, number>;
  graph?: Graph;
}

/**
 * The in-memory vector index of the semantic cache, one per replica, filled from `sluice_semantic`
 * (`followSemanticBucket`). Entries are grouped by `entry.partition` and a search only ever looks
 * inside one partition, so tenants, namespaces, embedding models and conversations never mix.
 * Small partitions are scanned exactly (usearch `exactSearch`, inner product over unit vectors =
 * cosine); a partition above `hnswAbove` entries also gets a usearch HNSW graph, built a slice per
 * event-loop turn, while the entries not yet in it are scanned beside it. Memory: ~1 kB per entry
 * per 256 dimensions for the packed vectors, as much again plus links for a graph, plus the text.
 *
 * @example
 * const index = new SemanticIndex();
 * index.upsert(semanticKeyOf(entry.cacheKey), entry);
 * const [best] = index.search(entry.partition, queryVector, 4, Date.now());
 */
export class SemanticIndex {
  readonly #partitions = new Map<string, Partition>();
  /** Bucket key -> the partition holding it, for removals. */
  readonly #where = new Map<string, Partition>();
  readonly #hnswAbove: number;
  readonly #connectivity: number;
  readonly #buildSliceMs: number;
  #building = false;
  #built: Array<() => void> = [];

  constructor(opts: SemanticIndexOptions = {}) {
    this.#hnswAbove = opts.hnswAbove ?? DEFAULT_HNSW_ABOVE;
    this.#connectivity = opts.connectivity ?? 16;
    this.#buildSliceMs = opts.buildSliceMs ?? 8;
  }

  /**
   * Adds the entry under `id` (its bucket key), replacing what `id` held. Returns false, keeping
   * nothing under `id`, when the vector's length differs from the partition's (the partition
   * names its dimensions, so only a corrupt entry does that). The vector is copied, as a unit vector.
   */
  upsert(id: string, entry: SemanticEntry): boolean {
    this.remove(id);
    const { vector, ...meta } = entry;
    let p = this.#partitions.get(entry.partition);
    if (p && p.dimensions !== vector.length) return false;
    if (!p) {
      p = { name: entry.partition, dimensions: vector.length, count: 0, vectors: new Float32Array(vector.length * 16), ids: [], metas: [], slotOf: new Map() };
      this.#partitions.set(entry.partition, p);
    }
    const d = p.dimensions;
    if ((p.count + 1) * d > p.vectors.length) {
      // 1.5x: a large partition wastes at most a third of its vectors' capacity, for a few more copies while it grows
      const grown = new Float32Array(Math.ceil(p.vectors.length / d / 2) * 3 * d);
      grown.set(p.vectors.subarray(0, p.count * d));
      p.vectors = grown;
    }
    const slot = p.count++;
    p.vectors.set(unit(vector), slot * d);
    p.ids[slot] = id;
    // one copy of the partition's name and tenant, not one per decoded entry
    p.metas[slot] = { ...meta, partition: p.name, tenant: p.metas[0]?.tenant === meta.tenant ? p.metas[0].tenant : meta.tenant };
    p.slotOf.set(id, slot);
    this.#where.set(id, p);
    if (p.graph) p.graph.pending.add(id);
    else if (p.count > this.#hnswAbove) p.graph = this.#newGraph(p);
    if (p.graph) this.#scheduleBuild();
    return true;
  }

  /** Removes the entry under `id`, if any. */
  remove(id: string): void {
    const p = this.#where.get(id);
    if (!p) return;
    this.#where.delete(id);
    const slot = p.slotOf.get(id)!;
    const last = p.count - 1;
    const d = p.dimensions;
    if (slot !== last) {
      p.vectors.copyWithin(slot * d, last * d, (last + 1) * d);
      p.ids[slot] = p.ids[last]!;
      p.metas[slot] = p.metas[last]!;
      p.slotOf.set(p.ids[slot], slot);
    }
    p.ids.pop();
    p.metas.pop();
    p.slotOf.delete(id);
    p.count = last;
    const g = p.graph;
    if (g && !g.pending.delete(id)) {
      const key = g.keyOf.get(id)!;
      g.index.remove(key);
      g.keyOf.delete(id);
      g.idOf.delete(key);
      g.removed++;
    }
    if (p.count === 0) {
      this.#partitions.delete(p.name);
    } else if (g && p.count <= this.#hnswAbove / 2) {
      p.graph = undefined;
    } else if (g && g.removed > p.count * REBUILD_WHEN_REMOVED_OVER_LIVE) {
      p.graph = this.#newGraph(p);
      this.#scheduleBuild();
    }
  }

  /**
   * The `k` entries of `partition` most similar to `vector` (cosine; the query is normalised
   * here), best first, skipping entries whose `expiresAt` is at or before `now` (epoch ms).
   * Empty for an unknown partition or a vector of another length. Cost: an exact scan of the
   * partition (~0.1 ms per 1k entries at 256-d) below the HNSW size, ~0.1-0.3 ms above it.
   */
  search(partition: string, vector: Float32Array, k: number, now: number): SemanticMatch[] {
    const p = this.#partitions.get(partition);
    if (!p || p.dimensions !== vector.length || k < 1) return [];
    const q = unit(vector);
    // ask for more than k when expired entries may take places; double until k are found or all were seen
    for (let want = Math.min(p.count, k + 2); ; want = Math.min(p.count, want * 2)) {
      const found = this.#nearest(p, q, want);
      const live = found.filter((m) => p.metas[m.slot]!.expiresAt > now);
      if (live.length >= k || want >= p.count) {
        return live.slice(0, k).map(({ slot, similarity }) => ({
          id: p.ids[slot]!,
          entry: { ...p.metas[slot]!, vector: p.vectors.slice(slot * p.dimensions, (slot + 1) * p.dimensions) },
          similarity,
        }));
      }
    }
  }

  /** Removes every entry whose `expiresAt` is at or before `now` (epoch ms); returns how many. */
  sweep(now: number): number {
    const expired: string[] = [];
    for (const p of this.#partitions.values()) for (let s = 0; s < p.count; s++) if (p.metas[s]!.expiresAt <= now) expired.push(p.ids[s]!);
    for (const id of expired) this.remove(id);
    return expired.length;
  }

  /** Entries held, over all partitions. */
  size(): number {
    return this.#where.size;
  }

  /**
   * An estimate of the memory the index holds, in bytes: the packed vectors (capacity, not just
   * use), each graph's copy of its vectors and links (usearch does not report its own), the
   * strings (UTF-16) and a fixed overhead per entry.
   */
  bytes(): number {
    let total = 0;
    for (const p of this.#partitions.values()) {
      total += p.vectors.byteLength + 2 * p.name.length;
      if (p.graph) total += (p.count + p.graph.removed) * (p.dimensions * 4 + this.#connectivity * 2 * 4 + 16);
      for (const m of p.metas) total += 2 * (m.text.length + m.cacheKey.length + m.requestId.length) + ENTRY_OVERHEAD_BYTES;
    }
    return total;
  }

  /** Counts for metrics and the bench: entries, partitions, partitions with a graph, entries not yet in their graph. */
  stats(): { entries: number; partitions: number; graphs: number; pending: number } {
    let graphs = 0;
    let pending = 0;
    for (const p of this.#partitions.values()) {
      if (!p.graph) continue;
      graphs++;
      pending += p.graph.pending.size;
    }
    return { entries: this.size(), partitions: this.#partitions.size, graphs, pending };
  }

  /** Resolves once every graph holds all of its partition's entries (immediately when none is building). */
  whenBuilt(): Promise<void> {
    if (!this.#building) return Promise.resolve();
    return new Promise((resolve) => this.#built.push(resolve));
  }

  #nearest(p: Partition, q: Float32Array, want: number): Array<{ slot: number; similarity: number }> {
    const d = p.dimensions;
    const g = p.graph;
    // a graph still missing most of its entries would leave most to the slow scan below: one native scan is faster
    if (!g || g.pending.size * 4 > p.count) {
      const m = exactSearch(p.vectors.subarray(0, p.count * d), q, d, want, MetricKind.IP, 1);
      return Array.from(m.keys, (key, i) => ({ slot: Number(key), similarity: 1 - m.distances[i]! }));
    }
    const out: Array<{ slot: number; similarity: number }> = [];
    if (g.keyOf.size > 0) {
      const m = g.index.search(q, Math.min(want, g.keyOf.size), 1);
      m.keys.forEach((key, i) => {
        const id = g.idOf.get(key);
        if (id !== undefined) out.push({ slot: p.slotOf.get(id)!, similarity: 1 - m.distances[i]! });
      });
    }
    for (const id of g.pending) {
      const slot = p.slotOf.get(id)!;
      let dot = 0;
      for (let j = 0, o = slot * d; j < d; j++) dot += p.vectors[o + j]! * q[j]!;
      out.push({ slot, similarity: dot });
    }
    return out.sort((a, b) => b.similarity - a.similarity).slice(0, want);
  }

  #newGraph(p: Partition): Graph {
    const index = new Index({
      dimensions: p.dimensions,
      metric: MetricKind.IP,
      quantization: ScalarKind.F32,
      connectivity: this.#connectivity,
      expansion_add: EXPANSION_ADD,
      expansion_search: EXPANSION_SEARCH,
      multi: false,
    });
    return { index, keyOf: new Map(), idOf: new Map(), nextKey: 0n, pending: new Set(p.ids.slice(0, p.count)), removed: 0 };
  }

  #scheduleBuild(): void {
    if (this.#building) return;
    this.#building = true;
    setImmediate(() => this.#buildSlice());
  }

  /** Adds pending entries to their graphs for about `buildSliceMs`, then yields the event loop. */
  #buildSlice(): void {
    const end = performance.now() + this.#buildSliceMs;
    for (const p of this.#partitions.values()) {
      const g = p.graph;
      while (g && g.pending.size > 0 && performance.now() < end) {
        const ids = [...take(g.pending, BUILD_BATCH)];
        const keys = new BigUint64Array(ids.length);
        const vectors = new Float32Array(ids.length * p.dimensions);
        ids.forEach((id, i) => {
          const slot = p.slotOf.get(id)!;
          keys[i] = g.nextKey;
          g.keyOf.set(id, g.nextKey);
          g.idOf.set(g.nextKey, id);
          g.nextKey++;
          vectors.set(p.vectors.subarray(slot * p.dimensions, (slot + 1) * p.dimensions), i * p.dimensions);
          g.pending.delete(id);
        });
        g.index.add(keys, vectors, 1);
      }
    }
    const left = [...this.#partitions.values()].some((p) => (p.graph?.pending.size ?? 0) > 0);
    if (left) {
      setImmediate(() => this.#buildSlice());
      return;
    }
    this.#building = false;
    for (const resolve of this.#built.splice(0)) resolve();
  }
}

function* take<T>(items: Iterable<T>, n: number): Generator<T> {
  if (n <= 0) return;
  for (const item of items) {
    yield item;
    if (--n === 0) return;
  }
}

/** The vector scaled to unit length (a copy; the same values when it already is). */
function unit(vector: Float32Array): Float32Array {
  let norm = 0;
  for (let i = 0; i < vector.length; i++) norm += vector[i]! * vector[i]!;
  const out = new Float32Array(vector);
  if (norm > 0 && Math.abs(norm - 1) > 1e-6) {
    const inv = 1 / Math.sqrt(norm);
    for (let i = 0; i < out.length; i++) out[i]! *= inv;
  }
  return out;
}
