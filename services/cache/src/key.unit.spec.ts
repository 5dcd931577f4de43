import { describe, expect, it } from 'vitest';
import { cacheKey, canonicalJson } from './key.js';
import { request } from './fixtures.js';

describe('cacheKey', () => {
  it('is the tenant followed by a sha256 hex digest', () => {
    expect(cacheKey('acme', request())).toMatch(/^acme\.[0-9a-f]{64}$/);
  });

  it('is stable under key order, surrounding and repeated whitespace, and undefined params', () => {
    const a = request({ params: { temperature: 0, top_p: 1 } });
    const b = request({
      params: { top_p: 1, temperature: 0, seed: undefined },
      messages: [
        { content: '  You are   terse. ', role: 'system' },
        { content: 'What is\nthe capital of\tFrance?  ', role: 'user' },
      ],
    });
    expect(cacheKey('acme', b)).toBe(cacheKey('acme', a));
  });

  it('ignores what does not change the answer: streaming, user, priority, metadata', () => {
    const a = request();
    const b = request({ stream: true, user: 'u1', priority: 'critical', metadata: { k: 'v' }, feature: 'chat' });
    expect(cacheKey('acme', b)).toBe(cacheKey('acme', a));
  });

  it('differs by tenant, model, params, message content, role and name', () => {
    const base = cacheKey('acme', request());
    const others = [
      cacheKey('globex', request()),
      cacheKey('acme', request({ model: 'gpt-4o-mini' })),
      cacheKey('acme', request({ params: { temperature: 0.7 } })),
      cacheKey('acme', request({ params: { temperature: 0, max_tokens: 10 } })),
      cacheKey('acme', request({ messages: [{ role: 'user', content: 'What is the capital of Spain?' }] })),
      cacheKey(
        'acme',
        request({
          messages: [
            { role: 'system', content: 'You are terse.' },
            { role: 'assistant', content: 'What is the capital of France?' },
          ],
        }),
      ),
      cacheKey(
        'acme',
        request({
          messages: [
            { role: 'system', content: 'You are terse.' },
            { role: 'user', content: 'What is the capital of France?', name: 'bob' },
          ],
        }),
      ),
    ];
    expect(new Set([base, ...others]).size).toBe(others.length + 1);
  });

  it('keeps message order significant', () => {
    const [first, second] = request().messages;
    expect(cacheKey('acme', request({ messages: [second!, first!] }))).not.toBe(cacheKey('acme', request()));
  });
});

describe('canonicalJson', () => {
  it('sorts keys at every depth and drops undefined members', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: undefined, w: 'z' }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"w":"z","y":2}]},"b":1}');
  });
});
