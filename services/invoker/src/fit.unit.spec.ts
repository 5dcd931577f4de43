import { describe, expect, it } from 'vitest';
import type { RequestContext } from '@sluice/contracts';
import { fitContent } from './fit.js';

const ctx = (content: string): RequestContext => ({
  request: { model: 'm1', messages: [{ role: 'user', content }], priority: 'standard', stream: false, params: {}, cache: 'default' },
  frontDoor: 'nats',
  receivedAt: 0,
  deadline: 60_000,
});
const MiB = 1024 * 1024;
const storedAnswerBytes = (request: RequestContext, content: string) => Buffer.byteLength(JSON.stringify({ ctx: request, answer: content, result: content }));

describe('fitContent', () => {
  it('leaves an ordinary answer as it is', () => {
    expect(fitContent('a normal answer', ctx('hi'), 8 * MiB)).toEqual({ content: 'a normal answer' });
    // large, but within a quarter of max_payload beside a large request
    const big = 'y'.repeat(1 * MiB);
    expect(fitContent(big, ctx('x'.repeat(3 * MiB)), 8 * MiB)).toEqual({ content: big });
  });

  it('cuts an answer the stored answer could not carry, and it then fits', () => {
    const request = ctx('x'.repeat(400_000));
    const answer = '\u0001'.repeat(300_000); // 1.8 MB as JSON
    const fitted = fitContent(answer, request, 1_000_000);
    expect(fitted.truncatedFrom).toBe(300_000);
    expect(fitted.content.length).toBeLessThan(answer.length);
    expect(fitted.content.length).toBeGreaterThan(0);
    expect(storedAnswerBytes(request, fitted.content)).toBeLessThanOrEqual(1_000_000);
  });

  it('never splits a surrogate pair', () => {
    const answer = '🚀'.repeat(200_000);
    const fitted = fitContent(answer, ctx('hi'), 1_000_000);
    expect(fitted.truncatedFrom).toBe(answer.length);
    expect(fitted.content.length % 2).toBe(0);
    expect(fitted.content.isWellFormed()).toBe(true);
  });
});
