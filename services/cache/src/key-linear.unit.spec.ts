import { createHash } from 'node:crypto';
import type { ChatMessage, ChatRequest } from '@sluice/contracts';
import { describe, expect, it } from 'vitest';
import { cacheKey, canonicalJson } from './key.js';
import { request } from './fixtures.js';

/** The key as canonicalJson of the whole material computes it (the definition). */
function byDefinition(tenant: string, r: ChatRequest): string {
  const messages = r.messages.map((m) => ({ role: m.role, content: m.content.trim().replace(/\s+/g, ' '), name: m.name }));
  return `${tenant}.${createHash('sha256')
    .update(canonicalJson({ tenant, model: r.model, messages, params: r.params }), 'utf8')
    .digest('hex')}`;
}

describe('cacheKey written directly', () => {
  it('equals the canonical JSON of the whole material, names, escapes and params included', () => {
    const odd = '"quotes" \\ back\u0000slash \n\t new\u2028lines 😀 \ud800';
    const messages: ChatMessage[] = [
      { role: 'system', content: `  ${odd}  ` },
      { role: 'user', content: 'hi', name: 'ana "a"' },
      { role: 'assistant', content: '' },
      { role: 'tool', content: 'x', name: '' },
    ];
    for (const r of [request(), request({ messages }), request({ model: 'm"x', params: { stop: ['a', '"'], temperature: 0, seed: undefined } })]) {
      expect(cacheKey('t"1', r)).toBe(byDefinition('t"1', r));
    }
  });

  it('keys 30,000 tiny messages the same way', () => {
    const r = request({ messages: Array.from({ length: 30_000 }, (_, i) => ({ role: 'user' as const, content: ` m ${i} ` })) });
    expect(cacheKey('acme', r)).toBe(byDefinition('acme', r));
  });
});
