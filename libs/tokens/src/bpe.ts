import { createRequire } from 'node:module';

/**
 * Byte-pair encoding of one pre-tokenizer piece in o200k_base, counting only. The merges are
 * gpt-tokenizer's (and tiktoken's): repeatedly join the adjacent pair whose bytes have the lowest
 * rank, the leftmost first, until no pair is a token; the count is the number of parts left.
 * gpt-tokenizer scans every pair for the minimum after each merge (quadratic in the piece) and
 * decodes each candidate pair to a string (~1.5 µs a byte even on short pieces); here the pairs
 * sit in a heap, ranks are looked up by the bytes as a binary string, and a bit filter rules out
 * most pairs that are no token: 0.05 to 0.25 µs a byte (docs/input-bounds.md).
 */

const BOM = '\xef\xbb\xbf';
const strictDecoder = new TextDecoder('utf-8', { fatal: true });

// token bytes as a binary string (one char per byte) -> rank
let rankOf = new Map<string, number>();
// a bit per hash of a token's bytes (2^22 bits, 512 KB, ~5% set): most candidate pairs are not
// tokens, and ruling them out here is several times cheaper than slicing and a failed Map lookup
const HASH_BITS = 22;
let maybeToken = new Int32Array(0);
// rank of every token of exactly two bytes, by (first << 8 | second); -1: none
let pairRank = new Int32Array(0);
let loaded = false;

/**
 * Builds the tables from o200k_base's rank list the first time a piece is counted, not at import:
 * the list and the tables take ~60 MB, and a process that imports this package without counting
 * (the router, for the complexity names; the invoker, which counts only a cancelled stream's
 * text) never pays for them. Loaded with require: the list is gpt-tokenizer's CommonJS build of
 * the module an import would load, and a require can run synchronously inside `countPiece`.
 */
function load(): void {
  loaded = true;
  const ranksByIndex = createRequire(import.meta.url)('gpt-tokenizer/bpeRanks/o200k_base') as { default: readonly (string | readonly number[])[] };
  const encoder = new TextEncoder();
  rankOf = new Map();
  maybeToken = new Int32Array(2 ** HASH_BITS / 32);
  pairRank = new Int32Array(65_536).fill(-1);
  ranksByIndex.default.forEach((token, rank) => {
    const key = binary(typeof token === 'string' ? encoder.encode(token) : token);
    // gpt-tokenizer finds a byte sequence that is valid UTF-8 only among the tokens it keeps as
    // strings; the few it keeps as bytes although valid (they start with a BOM) it never finds
    if (typeof token !== 'string' && isUtf8(key)) return;
    rankOf.set(key, rank);
    const h = spanHash(key, 0, key.length);
    maybeToken[h >>> 5]! |= 1 << (h & 31);
    if (key.length === 2) pairRank[(key.charCodeAt(0) << 8) | key.charCodeAt(1)] = rank;
  });
}

/** Builds the tables now, so the first request does not wait for them (ingress calls it at start). */
export function loadTables(): void {
  if (!loaded) load();
}

const NONE = 2 ** 30;

/**
 * Tokens of one piece, given as its UTF-8 bytes in a binary string (`binary()`).
 *
 * @example
 * countPiece(binary(new TextEncoder().encode(' hello'))) // 1
 */
export function countPiece(bytes: string): number {
  if (!loaded) load();
  const n = bytes.length;
  if (n <= 1 || rankOf.has(bytes)) return n === 0 ? 0 : 1;
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
    const r = pairRank[(bytes.charCodeAt(i) << 8) | bytes.charCodeAt(i + 1)]!;
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
    rank[i] = k < n ? lookup(bytes, i, next[k]!) : NONE;
    if (rank[i] !== NONE) push(heap, rank[i] * (n + 1) + i);
    const p = prev[i]!;
    if (p >= 0) {
      rank[p] = lookup(bytes, p, k);
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

function lookup(bytes: string, from: number, to: number): number {
  if (bytes.charCodeAt(from) === 0xef) {
    let key = bytes.slice(from, to);
    // gpt-tokenizer decodes a valid UTF-8 pair to a string before its lookup, and decoding drops
    // a leading byte order mark: "\uFEFF\n" is ranked as "\n". Copied, so counts match it exactly
    if (key.startsWith(BOM) && isUtf8(key)) key = key.slice(3);
    return rankOf.get(key) ?? NONE;
  }
  const h = spanHash(bytes, from, to);
  if ((maybeToken[h >>> 5]! & (1 << (h & 31))) === 0) return NONE;
  return rankOf.get(bytes.slice(from, to)) ?? NONE;
}

/** FNV-1a of bytes[from, to), HASH_BITS wide. */
function spanHash(bytes: string, from: number, to: number): number {
  let h = 0x811c9dc5;
  for (let i = from; i < to; i++) h = Math.imul(h ^ bytes.charCodeAt(i), 0x01000193);
  return h >>> (32 - HASH_BITS);
}

/** Whether a binary string holds well-formed UTF-8 (what TextDecoder with fatal: true accepts). */
function isUtf8(bytes: string): boolean {
  try {
    strictDecoder.decode(Uint8Array.from(bytes, (c) => c.charCodeAt(0)));
    return true;
  } catch {
    return false;
  }
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
