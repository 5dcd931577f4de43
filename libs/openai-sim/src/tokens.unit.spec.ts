import { encode } from 'gpt-tokenizer';
import { describe, expect, it } from 'vitest';
import { contentText, countPromptTokens, countText } from './tokens.js';

describe('countText', () => {
  it('matches gpt-tokenizer', () => {
    const s = 'The quick brown fox jumps over the lazy dog. Ünïcödé, 数字 123456!';
    expect(countText(s)).toBe(encode(s).length);
    expect(countText('')).toBe(0);
  });

  it('counts special-token text as plain text instead of throwing', () => {
    expect(countText('a <|endoftext|> b')).toBeGreaterThan(3);
  });
});

describe('contentText', () => {
  it('reads strings, text parts, and ignores the rest', () => {
    expect(contentText('hi')).toBe('hi');
    expect(
      contentText([
        { type: 'text', text: 'a' },
        { type: 'image_url', image_url: { url: 'x' } },
        { type: 'text', text: 'b' },
      ]),
    ).toBe('ab');
    expect(contentText(null)).toBe('');
    expect(contentText(undefined)).toBe('');
  });
});

describe('countPromptTokens', () => {
  it('is Σ (tokens(content) + 4) + 3', () => {
    const messages = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'What is the capital of France?' },
      { role: 'assistant', content: null },
    ];
    const expected = encode('You are terse.').length + 4 + encode('What is the capital of France?').length + 4 + 0 + 4 + 3;
    expect(countPromptTokens(messages)).toBe(expected);
  });
});
