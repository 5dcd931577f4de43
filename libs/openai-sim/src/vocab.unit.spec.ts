import { encode } from 'gpt-tokenizer';
import { describe, expect, it } from 'vitest';
import { VOCAB } from './vocab.js';

describe('VOCAB', () => {
  it('holds distinct words', () => {
    expect(new Set(VOCAB).size).toBe(VOCAB.length);
    expect(VOCAB.length).toBeGreaterThanOrEqual(32);
  });

  it.each(VOCAB.map((w) => [w]))('%s is exactly one token, bare and after a space', (w) => {
    expect(encode(w)).toHaveLength(1);
    expect(encode(` ${w}`)).toHaveLength(1);
  });

  it('concatenated words cost one token each', () => {
    const text = VOCAB.join(' ');
    expect(encode(text)).toHaveLength(VOCAB.length);
  });
});
