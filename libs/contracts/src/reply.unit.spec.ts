import { describe, expect, it } from 'vitest';
import { isChunk, isError, parseReply } from './reply.js';
import { answer, chatResult } from './testing.js';

describe("parseReply (the NATS door's reply contract)", () => {
  it('reads a result, a chunk and an error', () => {
    const result = chatResult('r1', answer('m', 1, 1, 'hi'), { created: 1 });
    expect(parseReply(JSON.stringify(result))).toEqual(result);
    const chunk = parseReply(JSON.stringify({ requestId: 'r1', model: 'm', chunk: { content: 'h', role: 'assistant' } }));
    expect(isChunk(chunk)).toBe(true);
    const error = parseReply(
      new TextEncoder().encode(
        JSON.stringify({ requestId: 'r1', error: { code: 'rate_limit_exceeded', message: 'slow down', status: 429, retryAfterMs: 500 } }),
      ),
    );
    expect(isError(error) && error.error.retryAfterMs).toBe(500);
  });

  it('refuses what is not a reply, naming the problem', () => {
    expect(() => parseReply('{"requestId": "r1"}')).toThrow(/not a Sluice reply/);
    expect(() => parseReply(JSON.stringify({ error: { code: 'x', message: 'm', status: '500' } }))).toThrow(/not a Sluice reply/);
    expect(() => parseReply('not json')).toThrow(SyntaxError);
  });
});
