import { describe, expect, it } from 'vitest';
import { answer } from '@sluice/contracts/testing';
import { streamReader, wholeAnswer } from './answer.js';

const chunk = (delta: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  id: 'chatcmpl-up',
  object: 'chat.completion.chunk',
  created: 1_700_000_000,
  model: 'gpt-4o-mini-2024-07-18',
  system_fingerprint: 'fp_x',
  choices: [{ index: 0, delta, logprobs: null, finish_reason: null }],
  usage: null,
  ...extra,
});
const usage = { prompt_tokens: 9, completion_tokens: 4, total_tokens: 13, completion_tokens_details: { reasoning_tokens: 0 } };
const usageChunk = { ...chunk({}), choices: [], usage };

describe('wholeAnswer', () => {
  it("keeps the upstream's object, with Sluice's completion id", () => {
    const { body } = answer('gpt-4o-mini', 10, 5, 'hi');
    expect(wholeAnswer('chat.completions', 'r1', body)).toEqual({
      body: { ...(body as object), id: 'chatcmpl-r1' },
      usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
    });
  });
  it('reads Responses usage in chat names, and refuses an answer without usage', () => {
    const response = { id: 'resp_1', object: 'response', usage: { input_tokens: 3, output_tokens: 2, total_tokens: 5 } };
    expect(wholeAnswer('responses', 'r1', response)).toEqual({ body: response, usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } });
    expect(() => wholeAnswer('chat.completions', 'r1', { choices: [] })).toThrow('upstream answered without usage');
  });
});

describe('streamReader (chat)', () => {
  it('forwards each chunk with the id rewritten, and adds them up to the completion', () => {
    const r = streamReader('chat.completions', 'r1', false);
    const call = { index: 0, id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"ci' } };
    const forwarded = [
      chunk({ role: 'assistant', content: null }),
      chunk({ tool_calls: [call] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: 'ty":"Paris"}' } }] }),
      { ...chunk({}), choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'tool_calls' }] },
      usageChunk,
    ].map((c) => r.take(c));
    expect(forwarded).toHaveLength(5);
    expect(forwarded.every((c) => (c as { id: string }).id === 'chatcmpl-r1')).toBe(true);
    expect((forwarded[1] as { choices: Array<{ delta: unknown }> }).choices[0]!.delta).toEqual({ tool_calls: [call] });
    const { body, usage: billed } = r.finish(0);
    expect(billed).toEqual({ prompt_tokens: 9, completion_tokens: 4, total_tokens: 13 });
    expect(body).toMatchObject({
      id: 'chatcmpl-r1',
      created: 1_700_000_000,
      model: 'gpt-4o-mini-2024-07-18',
      usage,
      choices: [
        {
          finish_reason: 'tool_calls',
          message: { content: null, tool_calls: [{ id: 'call_1', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        },
      ],
    });
  });

  it('keeps the usage chunk Sluice asked for from a client that did not', () => {
    const r = streamReader('chat.completions', 'r1', true);
    expect(r.take(chunk({ content: 'Hi' }))).not.toHaveProperty('usage');
    expect(r.take(usageChunk)).toBeUndefined();
    expect(r.finish(0).usage.total_tokens).toBe(13);
  });

  it('fails a stream that ended without usage, and reports what was streamed for a cancel', () => {
    const r = streamReader('chat.completions', 'r1', false);
    r.take(chunk({ content: 'Hello ' }));
    r.take(chunk({ content: 'there' }));
    expect(r.streamed()).toEqual({ text: 'Hello there' });
    expect(() => r.finish(0)).toThrow('without a usage chunk');
  });
});

describe('streamReader (responses)', () => {
  it('forwards every event as is; the answer is the completed response', () => {
    const r = streamReader('responses', 'r1', false);
    const response = { id: 'resp_1', object: 'response', status: 'completed', usage: { input_tokens: 3, output_tokens: 2, total_tokens: 5 } };
    const events = [
      { type: 'response.created', sequence_number: 0, response: { ...response, status: 'in_progress', usage: null } },
      { type: 'response.output_text.delta', sequence_number: 1, delta: 'Hi' },
      { type: 'response.completed', sequence_number: 2, response },
    ];
    expect(events.map((e) => r.take(e))).toEqual(events);
    expect(r.finish(0)).toEqual({ body: response, usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } });
  });
  it('counts the text deltas for a cancel, and fails on an error event or a stream without its end', () => {
    const r = streamReader('responses', 'r1', false);
    r.take({ type: 'response.output_text.delta', delta: 'Hel' });
    r.take({ type: 'response.function_call_arguments.delta', delta: '{}' });
    expect(r.streamed()).toEqual({ text: 'Hel{}' });
    expect(() => r.finish(0)).toThrow('without response.completed');
    expect(() => r.take({ type: 'error', code: 'server_error', message: 'boom' })).toThrow('upstream stream failed: boom');
  });
});
