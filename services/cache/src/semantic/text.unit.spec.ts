import { describe, expect, it } from 'vitest';
import { semanticParts, type SemanticParts } from './text.js';

const chat = (last: unknown, extra: Record<string, unknown> = {}) => ({
  model: 'auto',
  messages: [{ role: 'system', content: 'You are terse.' }, last],
  ...extra,
});
const parts = (body: unknown, namespace?: string) => semanticParts('chat.completions', body, namespace, 2000) as SemanticParts;

describe('semanticParts', () => {
  it('given a chat whose last turn is the user’s, then the text is that turn and the rest is hashed', () => {
    const p = parts(chat({ role: 'user', content: 'Turn on dark mode' }));
    expect(p.text).toBe('Turn on dark mode');
    expect(p.contextHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('given two questions in the same context, then they share the hash; a different system message, model, parameter or namespace does not', () => {
    const a = parts(chat({ role: 'user', content: 'How do I reset my password?' }));
    const b = parts(chat({ role: 'user', content: 'how can I reset my password' }));
    expect(b.contextHash).toBe(a.contextHash);
    const differs = [
      parts({
        ...chat({ role: 'user', content: 'x' }),
        messages: [
          { role: 'system', content: 'You are verbose.' },
          { role: 'user', content: 'x' },
        ],
      }),
      parts(chat({ role: 'user', content: 'x' }, { model: 'gpt-4o' })),
      parts(chat({ role: 'user', content: 'x' }, { temperature: 0.2 })),
      parts(chat({ role: 'user', content: 'x' }), 'team-a'),
    ];
    for (const d of differs) expect(d.contextHash).not.toBe(a.contextHash);
  });

  it('given fields that cannot change the answer (user, stream, metadata), then the hash is the same', () => {
    const a = parts(chat({ role: 'user', content: 'x' }));
    expect(parts(chat({ role: 'user', content: 'y' }, { user: 'u1', stream: true, metadata: { a: '1' } })).contextHash).toBe(a.contextHash);
  });

  it('given text parts, then they are joined; given an image part, then the request is exact-only', () => {
    expect(
      parts(
        chat({
          role: 'user',
          content: [
            { type: 'text', text: 'a' },
            { type: 'text', text: 'b' },
          ],
        }),
      ).text,
    ).toBe('a\nb');
    const image = chat({
      role: 'user',
      content: [
        { type: 'text', text: 'what is this' },
        { type: 'image_url', image_url: { url: 'https://x/y.png' } },
      ],
    });
    expect(semanticParts('chat.completions', image, undefined, 2000)).toEqual({ ineligible: expect.stringContaining('more than text') });
  });

  it.each([
    ['a tool result last', chat({ role: 'tool', tool_call_id: 'c1', content: '42' }), 'not a user turn'],
    ['an empty turn', chat({ role: 'user', content: '  ' }), 'empty'],
    ['a turn over the limit', chat({ role: 'user', content: 'x'.repeat(2001) }), 'longer than 2000'],
    ['no messages', { model: 'auto' }, 'not a user turn'],
    ['not an object', [1, 2], 'not a JSON object'],
  ])('given %s, then it is looked up exactly only', (_, body, why) => {
    expect(semanticParts('chat.completions', body, undefined, 2000)).toEqual({ ineligible: expect.stringContaining(why) });
  });

  it('given a Responses body, then its string input or last user item is the text; embeddings are exact only', () => {
    expect((semanticParts('responses', { model: 'auto', input: 'Turn off dark mode' }, undefined, 2000) as SemanticParts).text).toBe('Turn off dark mode');
    const items = { model: 'auto', input: [{ role: 'user', content: [{ type: 'input_text', text: 'hello' }] }] };
    expect((semanticParts('responses', items, undefined, 2000) as SemanticParts).text).toBe('hello');
    expect(semanticParts('embeddings', { model: 'm', input: 'x' }, undefined, 2000)).toEqual({ ineligible: expect.stringContaining('exactly only') });
  });
});
