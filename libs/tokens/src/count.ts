import { O200K_TOKEN_SPLIT_REGEX } from 'gpt-tokenizer/encodingParams/constants';
import { binary, countPiece } from './bpe.js';

/**
 * The longest pre-tokenizer piece (UTF-16 units) that is byte-pair encoded whole. A longer
 * piece — one long word, a long whitespace or punctuation run, a letter with many combining
 * marks — is cut into chunks of at most this many units, each encoded on its own, so that no
 * single merge costs more than a bounded amount of work and memory. Ordinary text has no such
 * piece (words, CJK phrases and indentation are far shorter) and counts exactly.
 */
export const MAX_PIECE_CHARS = 256;

// the tokenizer's own pre-tokenizer (o200k_base), own instance for its lastIndex
const split = new RegExp(O200K_TOKEN_SPLIT_REGEX.source, O200K_TOKEN_SPLIT_REGEX.flags);
// a chunk of a long piece is split again (into pieces no longer than itself), as gpt-tokenizer
// would split it on its own
const chunkSplit = new RegExp(split.source, split.flags);
const encoder = new TextEncoder();
// eslint-disable-next-line no-control-regex -- the whole ASCII range, NUL included, on purpose
const ascii = /^[\x00-\x7f]*$/;

/** Tokens counted from `from`, and where counting stopped (a piece boundary, or the end). */
export interface Span {
  tokens: number;
  next: number;
}

/**
 * Tokens of `text` in o200k_base, as gpt-tokenizer counts them (special tokens such as
 * "<|endoftext|>" count as the plain text they are), in time linear in the text's length
 * whatever its shape: exact when no pre-tokenizer piece is longer than MAX_PIECE_CHARS (all
 * ordinary text), else within a token or so per cut (docs/input-bounds.md).
 *
 * @example
 * countText('hello world') // 2
 */
export function countText(text: string): number {
  return countSpan(text, 0, Infinity).tokens;
}

/**
 * Counts `text` from `from` (0, or an earlier `next`) to the first piece boundary at or past
 * `from + budget` chars, so a long text can be counted in slices with other work in between.
 * Slices end at piece boundaries, so they add up to the count of the whole.
 */
export function countSpan(text: string, from: number, budget: number): Span {
  let tokens = 0;
  const stop = from + budget;
  split.lastIndex = from;
  for (let m = split.exec(text); m !== null; m = split.exec(text)) {
    const piece = m[0];
    if (piece.length <= MAX_PIECE_CHARS) tokens += pieceTokens(piece);
    else for (const chunk of chunksOf(piece)) for (const part of chunk.match(chunkSplit) ?? []) tokens += pieceTokens(part);
    if (split.lastIndex >= stop) return { tokens, next: split.lastIndex };
  }
  return { tokens, next: text.length };
}

function pieceTokens(piece: string): number {
  return countPiece(ascii.test(piece) ? piece : binary(encoder.encode(piece)));
}

/** A piece longer than MAX_PIECE_CHARS, as chunks of at most that many units (no surrogate pair split). */
export function chunksOf(piece: string): string[] {
  const chunks: string[] = [];
  for (let at = 0; at < piece.length;) {
    let end = Math.min(at + MAX_PIECE_CHARS, piece.length);
    if (end < piece.length && isLowSurrogate(piece.charCodeAt(end))) end--;
    chunks.push(piece.slice(at, end));
    at = end;
  }
  return chunks;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/** The pre-tokenizer's pieces of `text` (for tests and the benchmark). */
export function pieces(text: string): string[] {
  return [...text.matchAll(new RegExp(split.source, split.flags))].map((m) => m[0]);
}

/**
 * gpt-tokenizer's own count, for tests and the benchmark only: quadratic in a piece's length,
 * and it loads the tokenizer's own tables (~0.5 s, ~70 MB).
 */
export async function referenceCount(): Promise<(text: string) => number> {
  const { countTokens } = await import('gpt-tokenizer/encoding/o200k_base');
  const asText = { disallowedSpecial: new Set<string>() };
  return (text) => countTokens(text, asText);
}
