import { describe, expect, it } from 'vitest';
import { countText, MAX_PIECE_CHARS } from '@sluice/tokens';
import { DEFAULT_COMPLETION_TOKENS, estimateTokens, estimateTokensAsync } from './estimate.js';
import { limitKeys } from './store.js';

describe('estimateTokens', () => {
  it('counts prompt tokens with chat framing plus the completion allowance', () => {
    // "hello world" is 2 tokens in o200k_base; +4 for the message, +3 to prime the reply
    expect(estimateTokens({ messages: [{ role: 'user', content: 'hello world' }], params: { max_tokens: 100 } })).toBe(109);
    expect(estimateTokens({ messages: [{ role: 'user', content: 'hello world' }], params: {} })).toBe(9 + DEFAULT_COMPLETION_TOKENS);
  });

  it('grows with every message', () => {
    const one = estimateTokens({ messages: [{ role: 'user', content: 'hi' }], params: {} });
    const two = estimateTokens({
      messages: [
        { role: 'system', content: 'hi' },
        { role: 'user', content: 'hi' },
      ],
      params: {},
    });
    expect(two - one).toBe(5);
  });

  it('counts special-token text in a prompt as plain text instead of failing', () => {
    expect(estimateTokens({ messages: [{ role: 'user', content: 'x <|endoftext|> y' }], params: { max_tokens: 1 } })).toBeGreaterThan(8);
  });
});

describe('estimateTokens on hostile text', () => {
  it('counts a 1 MB word as the sum of its bounded chunks', () => {
    const word = 'x'.repeat(1_048_576);
    const perChunk = countText('x'.repeat(MAX_PIECE_CHARS));
    expect(estimateTokens({ messages: [{ role: 'user', content: word }], params: { max_tokens: 1 } })).toBe(
      3 + 4 + (word.length / MAX_PIECE_CHARS) * perChunk + 1,
    );
  });

  it('estimates the same off the event loop as on it, for short and long prompts', async () => {
    const short = { messages: [{ role: 'user' as const, content: 'hello world', name: 'ana' }], params: {} };
    const long = {
      messages: [
        { role: 'system' as const, content: 'be brief '.repeat(5_000) },
        { role: 'user' as const, content: 'ab'.repeat(100_000) },
      ],
      params: { max_tokens: 10 },
    };
    expect(await estimateTokensAsync(short)).toBe(estimateTokens(short));
    expect(await estimateTokensAsync(long)).toBe(estimateTokens({ ...long, messages: long.messages.map((m) => ({ ...m })) }));
  });
});

describe('limitKeys', () => {
  it('hashes user ids into KV-safe keys, per tenant', () => {
    const keys = limitKeys('acme', 'ana@example.com / *>');
    expect(keys.global).toBe('g');
    expect(keys.tenant).toBe('t.acme');
    expect(keys.user).toMatch(/^u\.acme\.[0-9a-f]{16}$/);
    expect(limitKeys('other', 'ana@example.com / *>').user).not.toBe(keys.user);
    expect(limitKeys('acme').user).toBeUndefined();
  });
});
