import { describe, expect, it } from 'vitest';
import { DEFAULT_COMPLETION_TOKENS, estimateTokens } from './estimate.js';
import { limitKeys } from './store.js';

describe('estimateTokens', () => {
  it('counts prompt tokens with chat framing plus the completion allowance', () => {
    // "hello world" is 2 tokens in o200k_base; +4 for the message, +3 to prime the reply
    expect(estimateTokens({ messages: [{ role: 'user', content: 'hello world' }], params: { max_tokens: 100 } })).toBe(109);
    expect(estimateTokens({ messages: [{ role: 'user', content: 'hello world' }], params: {} })).toBe(9 + DEFAULT_COMPLETION_TOKENS);
  });

  it('grows with every message', () => {
    const one = estimateTokens({ messages: [{ role: 'user', content: 'hi' }], params: {} });
    const two = estimateTokens({ messages: [{ role: 'system', content: 'hi' }, { role: 'user', content: 'hi' }], params: {} });
    expect(two - one).toBe(5);
  });

  it('counts special-token text in a prompt as plain text instead of failing', () => {
    expect(estimateTokens({ messages: [{ role: 'user', content: 'x <|endoftext|> y' }], params: { max_tokens: 1 } })).toBeGreaterThan(8);
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
