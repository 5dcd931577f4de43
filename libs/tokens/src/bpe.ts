import { loadTables, mergedRank, NONE, pairRankOf, rankOf } from './ranks.js';

/**
 * Byte-pair encoding of one pre-tokenizer piece in o200k_base, counting only. The merges are
 * gpt-tokenizer's (and tiktoken's): repeatedly join the adjacent pair whose bytes have the lowest
 * rank, the leftmost first, until no pair is a token; the count is the number of parts left.
 * gpt-tokenizer scans every pair for the minimum after each merge (quadratic in the piece) and
 * decodes each candidate pair to a string (~1.5 µs a byte even on short pieces); here the pairs
 * sit in a heap and a pair's rank is looked up by its bytes where they lie in the piece
 * (ranks.ts): 0.05 to 0.25 µs a byte (docs/input-bounds.md).
 */

/**
 * Tokens of one piece, given as its UTF-8 bytes in a binary string (`binary()`).
 *
 * @example
 * countPiece(binary(new TextEncoder().encode(' hello'))) // 1
 */
export function countPiece(bytes: string): number {
  loadTables();
  const n = bytes.length;
  // gpt-tokenizer looks the whole piece up as the text it is, so with no byte order mark dropped
  if (n <= 1 || rankOf(bytes, 0, n) !== NONE) return n === 0 ? 0 : 1;
  // parts are byte offsets; next[i]: where the part starting at i ends
  const next = new Int32Array(n + 1);
  const prev = new Int32Array(n + 1);
  // rank of the pair that starts at part i (NONE: not a token, or no right neighbour)
  const rank = new Int32Array(n).fill(NONE);
  const heap: number[] = [];
  for (let i = 0; i < n; i++) {
    next[i] = i + 1;
    prev[i] = i - 1;
  }
  for (let i = 0; i + 1 < n; i++) {
    const r = pairRankOf(bytes.charCodeAt(i), bytes.charCodeAt(i + 1));
    if (r >= 0) {
      rank[i] = r;
      heap.push(r * (n + 1) + i);
    }
  }
  heapify(heap);
  let parts = n;
  while (heap.length > 0) {
    const top = pop(heap);
    const r = Math.floor(top / (n + 1));
    const i = top - r * (n + 1);
    // a stale entry: the part at i was merged away or its pair changed since. A part's pair only
    // grows, so its rank never comes back to an old value
    if (rank[i] !== r) continue;
    const j = next[i]!;
    const k = next[j]!;
    next[i] = k;
    if (k < n) prev[k] = i;
    rank[j] = NONE;
    parts--;
    rank[i] = k < n ? mergedRank(bytes, i, next[k]!) : NONE;
    if (rank[i] !== NONE) push(heap, rank[i] * (n + 1) + i);
    const p = prev[i]!;
    if (p >= 0) {
      rank[p] = mergedRank(bytes, p, k);
      if (rank[p] !== NONE) push(heap, rank[p] * (n + 1) + p);
    }
  }
  return parts;
}

/** Bytes as a binary string, one char (0-255) per byte. */
export function binary(bytes: Uint8Array | readonly number[]): string {
  let s = '';
  for (let at = 0; at < bytes.length; at += 4_096) s += String.fromCharCode(...bytes.slice(at, at + 4_096));
  return s;
}

function heapify(heap: number[]): void {
  for (let i = (heap.length >> 1) - 1; i >= 0; i--) down(heap, i);
}

function push(heap: number[], value: number): void {
  let i = heap.push(value) - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (heap[parent]! <= value) break;
    heap[i] = heap[parent]!;
    i = parent;
  }
  heap[i] = value;
}

function pop(heap: number[]): number {
  const top = heap[0]!;
  const last = heap.pop()!;
  if (heap.length > 0) {
    heap[0] = last;
    down(heap, 0);
  }
  return top;
}

function down(heap: number[], from: number): void {
  const value = heap[from]!;
  let i = from;
  for (;;) {
    let child = 2 * i + 1;
    if (child >= heap.length) break;
    if (child + 1 < heap.length && heap[child + 1]! < heap[child]!) child++;
    if (heap[child]! >= value) break;
    heap[i] = heap[child]!;
    i = child;
  }
  heap[i] = value;
}
