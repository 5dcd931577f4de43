import { describe, expect, it } from 'vitest';
import { RequestRejected } from './rejection.js';
import { checkBody, MAX_JSON_DEPTH, parseJsonBody } from './validate.js';
import { thrown } from '@sluice/contracts/testing';

const rejected = (fn: () => unknown) => thrown(fn, RequestRejected);

const MB = 1_048_576;
const chat = (extra: string) => `{"messages":[{"role":"user","content":"hi"}]${extra}}`;
const nested = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;

describe('parseJsonBody on deep JSON', () => {
  it('given nesting of exactly MAX_JSON_DEPTH levels, then the value', () => {
    // the body object is the first level
    expect(parseJsonBody(chat(`,"x":${nested(MAX_JSON_DEPTH - 1)}`))).toHaveProperty('x');
  });

  it('given one level more, then a coded 400 naming the body', () => {
    const r = rejected(() => parseJsonBody(chat(`,"x":${nested(MAX_JSON_DEPTH)}`)));
    expect([r.code, r.status, r.param]).toEqual(['invalid_request', 400, 'body']);
  });

  it.each([
    ['an unknown field', (d: string) => chat(`,"x":${d}`)],
    ['metadata', (d: string) => chat(`,"metadata":{"a":${d}}`)],
    ['a message', (d: string) => `{"messages":[{"role":"user","content":${d}}]}`],
  ])('given 1 MB nested in %s, then a coded 400 before parsing', (_where, body) => {
    const text = body(nested(MB / 2 - 64));
    expect(text.length).toBeLessThanOrEqual(MB);
    expect(rejected(() => parseJsonBody(text)).code).toBe('invalid_request');
    const objects = body(`${'{"a":'.repeat(MB / 6 - 20)}1${'}'.repeat(MB / 6 - 20)}`);
    expect(rejected(() => parseJsonBody(objects)).code).toBe('invalid_request');
  });

  it('counts no bracket inside a string, escaped quotes and backslashes included', () => {
    const content = `[{"\\"[[[\\\\${'['.repeat(10_000)}`;
    const body = JSON.stringify({ messages: [{ role: 'user', content }], s: '\\', t: '\\"{{{' });
    const checked = checkBody('chat.completions', parseJsonBody(body), {}, { maxMessages: 1 }).body as { messages: Array<{ content: string }> };
    expect(checked.messages[0]!.content).toBe(content);
  });

  it('leaves malformed text to JSON.parse: invalid_json', () => {
    for (const text of ['{"a":"unterminated', '{"a":[1,2', `{"a":"\\"}`]) expect(rejected(() => parseJsonBody(text)).code).toBe('invalid_json');
  });
});
