import { beforeAll, describe, expect, it } from 'vitest';
import { chunksOf, countSpan, countText, MAX_PIECE_CHARS, pieces, referenceCount } from './count.js';
import { drawn, prose, TEXT_SHAPES } from './shapes.js';

const MB = 1_048_576;
let reference: (text: string) => number;
beforeAll(async () => {
  reference = await referenceCount();
});

const ORDINARY = [
  'hello world',
  'Refactor this:\n```ts\nfunction add(a: number, b: number) {\n    return a + b;\n}\n```\nThanks!',
  '日本語のテキストです。中文句子，没有空格。한국어 문장도 있습니다.',
  'Emoji 😀👍🏽 and flags 🇫🇷, ZWJ 👩‍👩‍👧.',
  'x <|endoftext|> y <|fim_prefix|>',
  '\ufeffa file that starts with a byte order mark\ufeff\n',
  'Ünïcödé café naïve — “quotes” and ‘apostrophes’; I’m, you’re, they’ll',
  'numbers 1234567890 3.14159 1e10 0xdeadbeef 192.168.0.1',
  '    indented\n\t\ttabs\r\n\r\n   trailing   \n',
  'https://example.com/a/b?c=d&e=f#g aGVsbG8gd29ybGQ= e3b0c44298fc1c149afbf4c8996fb924',
  '=================================================================================',
];

describe('countText', () => {
  it('counts ordinary text exactly as gpt-tokenizer does', () => {
    for (const text of ORDINARY) expect(countText(text), text).toBe(reference(text));
    for (let seed = 1; seed <= 20; seed++) {
      const text = prose(5_000, seed);
      expect(countText(text)).toBe(reference(text));
    }
  });

  it('counts random text in any script exactly, byte order marks and lone surrogates included', () => {
    const alphabet = 'abcXYZ éüñß中文字😀\u0301\ufeff\n\t  .,!?<|>/0123456789\u00a0\u2028\ud800';
    for (let seed = 1; seed <= 200; seed++) {
      const text = drawn(alphabet, 400, seed);
      expect(countText(text)).toBe(reference(text));
    }
  });

  it('finds no piece longer than MAX_PIECE_CHARS in ordinary text, so cuts never apply to it', () => {
    for (const text of [...ORDINARY, prose(100_000)]) expect(Math.max(...pieces(text).map((p) => p.length))).toBeLessThanOrEqual(MAX_PIECE_CHARS);
  });

  // many short pieces make the sum slow to take piece by piece: a quarter of the size suffices
  const manyPieces = new Set(['prose', 'words random']);
  it.each(Object.keys(TEXT_SHAPES))('counts 1 MB of %s as the sum of bounded parts', (shape) => {
    const text = TEXT_SHAPES[shape]!(manyPieces.has(shape) ? MB / 4 : MB);
    const parts = boundedParts(text);
    for (const part of parts) expect(part.length).toBeLessThanOrEqual(MAX_PIECE_CHARS);
    expect(parts.join('')).toBe(pieces(text).join(''));
    expect(countText(text)).toBe(parts.reduce((n, part) => n + countText(part), 0));
  });

  it.each(Object.keys(TEXT_SHAPES))('counts 64 KB of %s as gpt-tokenizer counts its bounded parts', (shape) => {
    const text = TEXT_SHAPES[shape]!(65_536);
    expect(countText(text)).toBe(boundedParts(text).reduce((n, part) => n + reference(part), 0));
  });

  it.each(Object.keys(TEXT_SHAPES))('stays within 1%% of the unbounded count on 16 KB of %s', (shape) => {
    const text = TEXT_SHAPES[shape]!(16_384);
    const exact = reference(text);
    expect(Math.abs(countText(text) - exact)).toBeLessThanOrEqual(Math.ceil(exact / 100));
  });
});

describe('chunksOf', () => {
  it('cuts a long piece into chunks of at most MAX_PIECE_CHARS that join back into it', () => {
    const piece = 'x'.repeat(10 * MAX_PIECE_CHARS + 7);
    const chunks = chunksOf(piece);
    expect(chunks).toHaveLength(11);
    expect(chunks.join('')).toBe(piece);
    expect(Math.max(...chunks.map((c) => c.length))).toBe(MAX_PIECE_CHARS);
  });

  it('never splits a surrogate pair', () => {
    const piece = `a${'😀'.repeat(1_000)}`;
    const chunks = chunksOf(piece);
    expect(chunks.join('')).toBe(piece);
    for (const c of chunks) expect(c).toMatch(/^(?:[^\ud800-\udfff]|[\ud800-\udbff][\udc00-\udfff])*$/);
  });
});

describe('countSpan', () => {
  it.each(['prose', 'word random', 'whitespace mixed', 'cjk'])('slices of %s add up to the whole count', (shape) => {
    const text = TEXT_SHAPES[shape]!(200_000);
    const whole = countText(text);
    for (const budget of [1, 1_000, 16_384]) {
      let tokens = 0;
      for (let at = 0; at < text.length;) {
        const span = countSpan(text, at, budget);
        expect(span.next).toBeGreaterThan(at);
        tokens += span.tokens;
        at = span.next;
      }
      expect(tokens).toBe(whole);
    }
  });
});

/** The text as the counter sees it: its pieces, the long ones cut into chunks. */
function boundedParts(text: string): string[] {
  return pieces(text).flatMap((p) => (p.length > MAX_PIECE_CHARS ? chunksOf(p) : [p]));
}
