import { createRequire } from 'node:module';
import { beforeAll, describe, expect, it } from 'vitest';
import { binary } from './bpe.js';
import { loadTables, NONE, rankOf } from './ranks.js';

const strictDecoder = new TextDecoder('utf-8', { fatal: true });

describe('rankOf', () => {
  beforeAll(loadTables);

  it('finds every token gpt-tokenizer finds, at its rank, and none of those it never finds', () => {
    // gpt-tokenizer's own rank list: tokens it keeps as text, and as bytes those that are not
    // (or, starting with a byte order mark, do not decode back to) the same UTF-8
    const list = (createRequire(import.meta.url)('gpt-tokenizer/bpeRanks/o200k_base') as { default: readonly (string | readonly number[])[] }).default;
    const encoder = new TextEncoder();
    const wrong: string[] = [];
    list.forEach((token, rank) => {
      const bytes = typeof token === 'string' ? encoder.encode(token) : Uint8Array.from(token);
      const key = binary(bytes);
      // gpt-tokenizer looks up valid UTF-8 only among the tokens it keeps as text
      const expected = typeof token !== 'string' && isUtf8(bytes) ? NONE : rank;
      if (rankOf(key, 0, key.length) !== expected) wrong.push(`${rank}: ${JSON.stringify(token)}`);
    });
    expect(list.length).toBeGreaterThan(199_000);
    expect(wrong).toEqual([]);
  });

  it('finds no token in bytes that are not one, nor in part of one', () => {
    const key = binary(new TextEncoder().encode(' hello'));
    expect(rankOf(key, 0, key.length)).not.toBe(NONE);
    expect(rankOf(`${key}\x00`, 0, key.length + 1)).toBe(NONE);
    expect(rankOf(key, 0, 0)).toBe(NONE);
  });
});

function isUtf8(bytes: Uint8Array): boolean {
  try {
    strictDecoder.decode(bytes);
    return true;
  } catch {
    return false;
  }
}
