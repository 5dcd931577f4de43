import { describe, expect, it } from 'vitest';
import type { BatchRecord, ChatReply } from '@sluice/contracts';
import { parseBatchInput } from './batch-input.js';
import { batchOutput, lineRequestId } from './batch-output.js';
import { nextStep } from './batch-step.js';

const NOW = 1_800_000_000_000;
const created = Math.floor(NOW / 1000) - 60;

function record(over: Partial<BatchRecord> = {}): BatchRecord {
  return {
    id: 'batch_aaaaaaaaaaaaaaaaaaaaaaaa',
    object: 'batch',
    endpoint: '/v1/chat/completions',
    model: null,
    errors: null,
    input_file_id: 'file-aaaaaaaaaaaaaaaaaaaaaaaa',
    completion_window: '24h',
    status: 'in_progress',
    output_file_id: null,
    error_file_id: null,
    created_at: created,
    expires_at: created + 86_400,
    in_progress_at: created,
    finalizing_at: null,
    completed_at: null,
    failed_at: null,
    expired_at: null,
    cancelling_at: null,
    cancelled_at: null,
    request_counts: { total: 10, completed: 0, failed: 0 },
    usage: { input_tokens: 0, input_tokens_details: { cached_tokens: 0 }, output_tokens: 0, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 0 },
    metadata: null,
    tenant: 'acme',
    lines: 10,
    submitted: 0,
    ...over,
  };
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe('nextStep', () => {
  it('given a new batch, validates it', () => {
    expect(nextStep(record({ status: 'validating', lines: 0 }), new Set(), NOW, 4)).toEqual({ kind: 'validate' });
  });

  it('given room in the window, submits the next lines in file order', () => {
    expect(nextStep(record(), new Set(), NOW, 4)).toEqual({ kind: 'submit', lines: [0, 1, 2, 3], submitted: 4 });
  });

  it('given a full window, waits; as lines are answered, submits as many more', () => {
    expect(nextStep(record({ submitted: 4 }), new Set([0]), NOW, 4)).toEqual({ kind: 'submit', lines: [4], submitted: 5 });
    expect(nextStep(record({ submitted: 4 }), new Set(), NOW, 4)).toEqual({ kind: 'wait' });
  });

  it('given lines past the cursor already answered (a restart after publishing them), skips them', () => {
    expect(nextStep(record({ submitted: 2 }), new Set([0, 1, 2, 3]), NOW, 2)).toEqual({ kind: 'submit', lines: [4, 5], submitted: 6 });
  });

  it('given every line answered, finishes it completed', () => {
    expect(nextStep(record({ submitted: 10 }), new Set(range(0, 10)), NOW, 4)).toEqual({ kind: 'finish', to: 'completed' });
  });

  it('given a cancel, waits for the lines in flight, then finishes it cancelled', () => {
    expect(nextStep(record({ status: 'cancelling', submitted: 4 }), new Set([0, 1]), NOW, 4)).toEqual({ kind: 'wait' });
    expect(nextStep(record({ status: 'cancelling', submitted: 4 }), new Set([0, 1, 2, 3]), NOW, 4)).toEqual({ kind: 'finish', to: 'cancelled' });
  });

  it('given 24 h gone, finishes it expired whatever is in flight', () => {
    const late = (created + 86_400) * 1000;
    expect(nextStep(record({ submitted: 6 }), new Set([0]), late, 4)).toEqual({ kind: 'finish', to: 'expired' });
    expect(nextStep(record({ status: 'validating', lines: 0 }), new Set(), late, 4)).toEqual({ kind: 'finish', to: 'expired' });
  });

  it('given a batch ended, does nothing', () => {
    for (const status of ['failed', 'completed', 'expired', 'cancelled'] as const)
      expect(nextStep(record({ status }), new Set(), NOW, 4)).toEqual({ kind: 'wait' });
  });
});

describe('batchOutput', () => {
  const ok = (requestId: string): ChatReply => ({
    requestId,
    model: 'm',
    body: { object: 'chat.completion' },
    usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
    cached: false,
    created: 1,
  });

  it('given answers and errors, writes OpenAI lines in input order and counts every line once', () => {
    const id = 'batch_x';
    const answers = new Map<number, ChatReply>([
      [0, ok(lineRequestId(id, 'a'))],
      [1, { requestId: lineRequestId(id, 'b'), error: { code: 'invalid_request', message: 'no messages', status: 400, param: 'messages' } }],
    ]);
    const out = batchOutput(id, ['a', 'b', 'c'], answers, 'cancelled');
    expect(out.counts).toEqual({ total: 3, completed: 1, failed: 2 });
    expect(out.usage).toMatchObject({ input_tokens: 3, output_tokens: 2, total_tokens: 5 });
    expect(JSON.parse(out.output[0]!)).toEqual({
      id: `batch_req_${lineRequestId(id, 'a').slice(4)}`,
      custom_id: 'a',
      response: { status_code: 200, request_id: lineRequestId(id, 'a'), body: { object: 'chat.completion' } },
      error: null,
    });
    expect(out.errors.map((l) => JSON.parse(l) as object)).toEqual([
      {
        id: expect.stringMatching(/^batch_req_/) as string,
        custom_id: 'b',
        response: {
          status_code: 400,
          request_id: lineRequestId(id, 'b'),
          body: { error: { message: 'no messages', type: 'invalid_request_error', param: 'messages', code: 'invalid_request' } },
        },
        error: null,
      },
      {
        id: expect.stringMatching(/^batch_req_/) as string,
        custom_id: 'c',
        response: null,
        error: expect.objectContaining({ code: 'batch_cancelled' }) as object,
      },
    ]);
  });

  it('derives the same request id for a line every time, and another for another batch', () => {
    expect(lineRequestId('batch_x', 'a')).toMatch(/^req_[a-z2-7]{20}$/);
    expect(lineRequestId('batch_x', 'a')).toBe(lineRequestId('batch_x', 'a'));
    expect(lineRequestId('batch_y', 'a')).not.toBe(lineRequestId('batch_x', 'a'));
  });
});

describe('parseBatchInput', () => {
  const line = (customId: string, body: object = { model: 'm', messages: [] }, url = '/v1/chat/completions') =>
    JSON.stringify({ custom_id: customId, method: 'POST', url, body });

  it('given valid lines, returns them in order with the first model; a bad body still passes', () => {
    expect(parseBatchInput(`${line('a')}\n\n${line('b', {})}\n`, '/v1/chat/completions')).toEqual({
      tasks: [
        { customId: 'a', body: { model: 'm', messages: [] } },
        { customId: 'b', body: {} },
      ],
      model: 'm',
    });
  });

  it('given bad lines, reports each with its 1-based line', () => {
    const text = [
      line('a'),
      '[1]',
      line('a'),
      line('c', {}, '/v1/embeddings'),
      JSON.stringify({ custom_id: 'd', method: 'POST', url: '/v1/chat/completions', body: 'x' }),
    ].join('\n');
    const r = parseBatchInput(text, '/v1/chat/completions');
    expect('errors' in r && r.errors.map((e) => [e.line, e.code, e.param])).toEqual([
      [2, 'invalid_json_line', null],
      [3, 'duplicate_custom_id', 'custom_id'],
      [4, 'url_mismatch', 'url'],
      [5, 'invalid_type', 'body'],
    ]);
  });

  it('given no lines, reports an empty file', () => {
    expect(parseBatchInput('\n', '/v1/embeddings')).toEqual({
      errors: [{ code: 'empty_file', message: 'The batch input file is empty.', param: null, line: null }],
    });
  });
});
