import { describe, expect, it } from 'vitest';
import type { RequestContext } from '@sluice/contracts';
import { answer, contentOf, requestContext } from '@sluice/contracts/testing';
import { fitBody } from './fit.js';

const ctx: RequestContext = requestContext(undefined, { receivedAt: 0 });
const MiB = 1024 * 1024;
const completion = (content: string) => answer('m1', 10, 5, content).body;
/** What the stored answer holds: the context and the body twice (chat.completed and the result). */
const storedAnswerBytes = (body: unknown) => Buffer.byteLength(JSON.stringify({ ctx, answer: body, result: body }));

describe('fitBody', () => {
  it('leaves an ordinary answer as it is', () => {
    const body = completion('a normal answer');
    expect(fitBody(body, 'chat.completions', ctx, 8 * MiB)).toEqual({ body, cuts: [] });
    // large, but within half of max_payload
    const big = completion('y'.repeat(3 * MiB));
    expect(fitBody(big, 'chat.completions', ctx, 8 * MiB).body).toBe(big);
  });

  it('cuts the content the stored answer could not carry, says the choice stopped at length, and it then fits', () => {
    const body = completion('\u0001'.repeat(300_000)); // 1.8 MB as JSON
    const fitted = fitBody(body, 'chat.completions', ctx, 1_000_000);
    const content = contentOf(fitted.body)!;
    expect(fitted.cuts).toEqual([{ path: 'choices.0.message.content', from: 300_000, to: content.length }]);
    expect(content.length).toBeGreaterThan(0);
    expect((fitted.body as { choices: Array<{ finish_reason: string }> }).choices[0]!.finish_reason).toBe('length');
    expect(storedAnswerBytes(fitted.body)).toBeLessThanOrEqual(1_000_000);
    // the upstream's object is not changed in place
    expect(contentOf(body)!.length).toBe(300_000);
  });

  it("cuts a tool call's arguments when they are the bulk", () => {
    const body = completion('');
    const message = (body as { choices: Array<{ message: Record<string, unknown> }> }).choices[0]!.message;
    message.content = null;
    message.tool_calls = [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: JSON.stringify({ x: 'z'.repeat(600_000) }) } }];
    const fitted = fitBody(body, 'chat.completions', ctx, 1_000_000);
    expect(fitted.cuts.map((c) => c.path)).toEqual(['choices.0.message.tool_calls.0.function.arguments']);
    expect(storedAnswerBytes(fitted.body)).toBeLessThanOrEqual(1_000_000);
  });

  it('marks a cut response incomplete', () => {
    const response = { object: 'response', status: 'completed', output: [{ type: 'message', content: [{ type: 'output_text', text: 'w'.repeat(900_000) }] }] };
    const fitted = fitBody(response, 'responses', ctx, 1_000_000);
    expect(fitted.body).toMatchObject({ status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } });
    expect(storedAnswerBytes(fitted.body)).toBeLessThanOrEqual(1_000_000);
  });

  it('never splits a surrogate pair', () => {
    const fitted = fitBody(completion('🚀'.repeat(200_000)), 'chat.completions', ctx, 1_000_000);
    const content = contentOf(fitted.body)!;
    expect(content.length % 2).toBe(0);
    expect(content.isWellFormed()).toBe(true);
  });
});
