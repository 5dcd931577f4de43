import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/**
 * o200k_base's rank table, compact: every token's bytes end to end in one array, found through
 * an open-addressing hash table of ranks, so a span of a piece is looked up where it lies (hashed
 * and compared byte by byte) without slicing it into a string. ~5 MB of typed arrays, and the
 * build leaves ~11 MB more resident in all; a Map from ~200k binary strings, built from
 * gpt-tokenizer's rank list, left ~68 MB (19 MB of it heap).
 */

/** No rank: the bytes are not a token. */
export const NONE = 2 ** 30;

// token r is tokenBytes[tokenStart[r], tokenStart[r + 1])
let tokenBytes = new Uint8Array(0);
let tokenStart = new Int32Array(0);
// at the slot a token's hash leads to, or the next free one after it (linear probing): its rank,
// and above it the hash's low bits, so a probe rarely reads a token that cannot match; -1 free.
// 2^19 slots (2 MB) for ~200k tokens: 38% full, so a miss probes ~2 slots
const SLOT_BITS = 19;
const SLOT_MASK = 2 ** SLOT_BITS - 1;
const RANK_BITS = 18;
const RANK_MASK = 2 ** RANK_BITS - 1;
// the hash's bits below those that index the slot: 13, which with a rank fill 31 bits
const CHECK_MASK = 2 ** (32 - SLOT_BITS) - 1;
let slots = new Int32Array(0);
// a bit per hash of a token's bytes (2^22 bits, 512 KB, ~5% set): most candidate pairs are not
// tokens, and one bit rules them out before the probes and byte comparisons of the slots
const FILTER_BITS = 22;
let maybeToken = new Int32Array(0);
// rank of every token of exactly two bytes, by (first << 8 | second); -1: none
let pairRank = new Int32Array(0);
let loaded = false;

const BOM = [0xef, 0xbb, 0xbf] as const;
const NEWLINE = 0x0a;
const SPACE = 0x20;
const strictDecoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Builds the tables now if no count has yet (ingress calls it at start, so the first request does
 * not wait for them). Not at import: a process that imports the package without counting (the
 * router, for the complexity names; the invoker, which counts only a cancelled stream's text)
 * never pays for them.
 */
export function loadTables(): void {
  if (!loaded) load();
}

/**
 * Reads o200k_base's own rank file as gpt-tokenizer ships it (data/o200k_base.tiktoken: a line
 * per token, its bytes in base64, a space and its rank; gpt-tokenizer's rank list is generated
 * from it), synchronously, as the first count needs it at once. Read as bytes and decoded line by
 * line: requiring gpt-tokenizer's list instead meant compiling a 2.2 MB script of ~200k strings,
 * which left ~30 MB more resident after the build even once collected, and took twice as long.
 */
function load(): void {
  loaded = true;
  const path = createRequire(import.meta.url).resolve('gpt-tokenizer/data/o200k_base.tiktoken');
  const file = readFileSync(path);
  let count = file.at(-1) === NEWLINE ? 0 : 1;
  for (let at = file.indexOf(NEWLINE); at >= 0; at = file.indexOf(NEWLINE, at + 1)) count++;
  if (count > RANK_MASK + 1) throw new Error(`${path}: ${count} tokens, more than a slot holds (${RANK_MASK + 1})`);
  // base64 is 4 chars for 3 bytes: the file's size bounds the tokens' bytes
  const buffer = Buffer.alloc(Math.ceil((file.length * 3) / 4));
  tokenStart = new Int32Array(count + 1);
  slots = new Int32Array(2 ** SLOT_BITS).fill(-1);
  maybeToken = new Int32Array(2 ** FILTER_BITS / 32);
  pairRank = new Int32Array(65_536).fill(-1);
  let end = 0;
  for (let rank = 0, line = 0; rank < count; rank++) {
    const space = file.indexOf(SPACE, line);
    let eol = file.indexOf(NEWLINE, space);
    if (eol < 0) eol = file.length;
    // gpt-tokenizer's list has a hole for a rank the file skips; none does, so a skip is refused
    if (space < 0 || Number(file.toString('latin1', space + 1, eol)) !== rank) throw new Error(`${path}: line ${rank + 1} is not rank ${rank}`);
    const from = end;
    end += buffer.write(file.toString('latin1', line, space), end, 'base64');
    tokenStart[rank + 1] = end;
    line = eol + 1;
    // gpt-tokenizer keeps a token as text if its bytes decode as UTF-8 and encode back the same,
    // and looks up valid UTF-8 only among those. Decoding drops a leading BOM, so the few valid
    // tokens that start with one are kept as bytes: it never finds them
    if (BOM.every((byte, i) => buffer[from + i] === byte) && isUtf8(buffer.subarray(from, end))) continue;
    const h = tokenHash(buffer, from, end);
    maybeToken[h >>> (32 - FILTER_BITS + 5)]! |= 1 << ((h >>> (32 - FILTER_BITS)) & 31);
    let slot = h >>> (32 - SLOT_BITS);
    while (slots[slot] !== -1) slot = (slot + 1) & SLOT_MASK;
    slots[slot] = ((h & CHECK_MASK) << RANK_BITS) | rank;
    if (end - from === 2) pairRank[(buffer[from]! << 8) | buffer[from + 1]!] = rank;
  }
  // a copy of the bytes used, so the rest of the buffer is freed
  tokenBytes = new Uint8Array(buffer.subarray(0, end));
}

/** Rank of the token of bytes[from, to) of a binary string (one char, 0-255, per byte), or NONE. */
export function rankOf(piece: string, from: number, to: number): number {
  const h = spanHash(piece, from, to);
  if ((maybeToken[h >>> (32 - FILTER_BITS + 5)]! & (1 << ((h >>> (32 - FILTER_BITS)) & 31))) === 0) return NONE;
  const length = to - from;
  const check = h & CHECK_MASK;
  for (let slot = h >>> (32 - SLOT_BITS); slots[slot] !== -1; slot = (slot + 1) & SLOT_MASK) {
    if (slots[slot]! >>> RANK_BITS !== check) continue;
    const rank = slots[slot]! & RANK_MASK;
    const at = tokenStart[rank]!;
    if (tokenStart[rank + 1]! - at === length && sameBytes(piece, from, at, length)) return rank;
  }
  return NONE;
}

/**
 * Rank of the pair of parts bytes[from, to) as gpt-tokenizer finds it during merges: it decodes a
 * valid UTF-8 pair to a string before its lookup, and decoding drops a leading byte order mark
 * ("\uFEFF\n" is ranked as "\n"). Copied, so counts match it exactly.
 */
export function mergedRank(piece: string, from: number, to: number): number {
  if (startsWithBom(piece, from, to) && isUtf8(Uint8Array.from(piece.slice(from, to), (c) => c.charCodeAt(0)))) return rankOf(piece, from + 3, to);
  return rankOf(piece, from, to);
}

/** Rank of the two-byte token `first second`, or -1. */
export function pairRankOf(first: number, second: number): number {
  return pairRank[(first << 8) | second]!;
}

function sameBytes(piece: string, from: number, at: number, length: number): boolean {
  for (let i = 0; i < length; i++) if (piece.charCodeAt(from + i) !== tokenBytes[at + i]) return false;
  return true;
}

function startsWithBom(piece: string, from: number, to: number): boolean {
  return to - from >= 3 && piece.charCodeAt(from) === BOM[0] && piece.charCodeAt(from + 1) === BOM[1] && piece.charCodeAt(from + 2) === BOM[2];
}

// FNV-1a, 32 bits; the same over a binary string and over bytes (a token's slot is found by one,
// looked up by the other). Its high bits are the well mixed ones: they index the filter and slots
/** FNV-1a of piece[from, to), a binary string. */
function spanHash(piece: string, from: number, to: number): number {
  let h = 0x811c9dc5;
  for (let i = from; i < to; i++) h = Math.imul(h ^ piece.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** FNV-1a of data[from, to). */
function tokenHash(data: Uint8Array, from: number, to: number): number {
  let h = 0x811c9dc5;
  for (let i = from; i < to; i++) h = Math.imul(h ^ data[i]!, 0x01000193);
  return h >>> 0;
}

/** Whether bytes are well-formed UTF-8 (what TextDecoder with fatal: true accepts). */
function isUtf8(data: Uint8Array): boolean {
  try {
    strictDecoder.decode(data);
    return true;
  } catch {
    return false;
  }
}
