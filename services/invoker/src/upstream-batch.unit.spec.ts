import { describe, expect, it } from 'vitest';
import type { SluiceConfig } from '@sluice/contracts';
import { answer, requestContext, routed } from '@sluice/contracts/testing';
import { gather, groupId, jsonlLine, mapBack, pollDelay, ungrouped, upstreamBatchCandidate, type QueuedLine, type UpstreamGroup } from './upstream-batch.js';
import { concludeLine } from './upstream-batch-answer.js';
import { settings } from './fixtures.js';

const T0 = 1_700_000_000_000;
const GATHER = { gatherMs: 1000, maxLines: 3 };

/** A batch line of `batch` recorded at `at`, for deployment d1. */
function line(requestId: string, at: number, batch = 'batch_1'): QueuedLine {
  const ctx = requestContext(undefined, {
    batch: { id: batch, customId: `c-${requestId}` },
    replyTo: `sluice.results.batch.${batch}.${requestId}`,
    deadline: T0 + 86_400_000,
  });
  return { event: routed(requestId, 'acme', { ctx }), recordedAt: at };
}

const config = (batchApi: boolean) =>
  ({
    deployments: { d1: { baseUrl: 'http://d1/v1', timeoutMs: 1000, batchApi }, d2: { baseUrl: 'http://d2/v1', timeoutMs: 1000 } },
  }) as unknown as SluiceConfig;

describe('upstreamBatchCandidate: the routing decision', () => {
  it('given a batch line whose model has a deployment with batchApi, then it goes to that deployment', () => {
    const e = line('r1', T0).event;
    expect(upstreamBatchCandidate(e, config(true))).toEqual({ model: 'm1', deployment: 'd1' });
  });

  it('given a deployment without batchApi, or a request not of a batch, then it goes the lane way', () => {
    expect(upstreamBatchCandidate(line('r1', T0).event, config(false))).toBeUndefined();
    expect(upstreamBatchCandidate(routed('r2', 'acme'), config(true))).toBeUndefined();
  });

  it('given the batchApi deployment only in a fallback model, then the line goes the lane way', () => {
    const e = routed('r3', 'acme', {
      ctx: line('r3', T0).event.data.ctx,
      candidates: [
        { model: 'm1', deployment: 'd2' },
        { model: 'm2', deployment: 'd1' },
      ],
    });
    expect(upstreamBatchCandidate(e, config(true))).toBeUndefined();
  });
});

describe('gather: which recorded lines go upstream now', () => {
  it('given lines still arriving (the newest younger than gatherMs), then nothing is gathered', () => {
    expect(gather([line('a', T0), line('b', T0 + 500)], T0 + 1000, GATHER)).toEqual([]);
  });

  it('given a quiet batch, then its lines go as one set; a full set goes at once', () => {
    const quiet = gather([line('b', T0 + 10), line('a', T0)], T0 + 1010, GATHER);
    expect(quiet.map((g) => g.lines.map((l) => l.event.requestId))).toEqual([['a', 'b']]);
    expect(quiet[0]).toMatchObject({ batchId: 'batch_1', tenant: 'acme', deployment: 'd1', endpoint: 'chat.completions' });
    const busy = gather([line('a', T0), line('b', T0), line('c', T0), line('d', T0 + 900)], T0 + 901, GATHER);
    expect(busy.map((g) => g.lines.map((l) => l.event.requestId))).toEqual([['a', 'b', 'c']]);
  });

  it('given two Sluice batches, then each goes in sets of its own', () => {
    const sets = gather([line('a', T0), line('x', T0, 'batch_2')], T0 + 5000, GATHER);
    expect(sets.map((s) => s.batchId).sort()).toEqual(['batch_1', 'batch_2']);
  });

  it('given a line already in a group, then it is not gathered again; a group id depends on its lines only', () => {
    const lines = [line('a', T0), line('b', T0)];
    const group = { id: groupId(lines), lines: ['a'] } as UpstreamGroup;
    expect(ungrouped(lines, [group]).map((l) => l.event.requestId)).toEqual(['b']);
    expect(groupId([line('a', T0 + 1), line('b', T0 + 2)])).toBe(group.id);
  });
});

describe('mapBack: each line by custom_id from the output and error files', () => {
  const ok = (id: string, content: string) =>
    JSON.stringify({
      id: `batch_req_${id}`,
      custom_id: id,
      response: { status_code: 200, request_id: 'x', body: answer('m1', 10, 5, content).body },
      error: null,
    });
  const refused = (id: string) =>
    JSON.stringify({
      id: 'batch_req_e',
      custom_id: id,
      response: {
        status_code: 400,
        request_id: 'y',
        body: { error: { message: 'bad model', type: 'invalid_request_error', param: 'model', code: 'model_not_found' } },
      },
      error: null,
    });
  const expired = (id: string) => JSON.stringify({ id: 'batch_req_z', custom_id: id, response: null, error: { code: 'batch_expired', message: 'too late' } });

  it('given answers in any order, errors, lines never run, a stranger and a missing line, then each line gets its own', () => {
    const results = mapBack(
      ['a', 'b', 'c', 'd', 'e'],
      `${ok('b', 'B')}\n${ok('a', 'A')}\n${ok('zzz', 'Z')}\nnot json\n`,
      `${refused('c')}\n${expired('d')}\n`,
      'expired',
    );
    expect([...results.keys()]).toEqual(['b', 'a', 'c', 'd', 'e']);
    expect(results.get('a')).toMatchObject({ kind: 'answered', status: 200, body: { choices: [{ message: { content: 'A' } }] } });
    expect(results.get('b')).toMatchObject({ kind: 'answered', body: { choices: [{ message: { content: 'B' } }] } });
    expect(results.get('c')).toEqual({
      kind: 'failed',
      status: 400,
      message: 'bad model',
      upstream: { status: 400, type: 'invalid_request_error', code: 'model_not_found', param: 'model', message: 'bad model' },
    });
    expect(results.get('d')).toEqual({ kind: 'failed', message: 'The upstream batch did not run this line (batch_expired): too late' });
    expect(results.get('e')).toEqual({ kind: 'failed', message: 'The upstream batch ended expired without an answer for this line.' });
  });
});

describe('concludeLine: a line ends as the invoker would end its call', () => {
  const full = { deployments: config(true).deployments, invoker: settings } as unknown as SluiceConfig;

  it('given an answered line, then invoke.attempted and chat.completed with ctx.batch (billed at the batch price) and a reply to its result subject', () => {
    const l = line('r1', T0);
    const end = concludeLine(l, { kind: 'answered', status: 200, body: answer('m1', 10, 5, 'hi').body }, full, 8 << 20, T0 + 5000, 4000);
    expect(end.events.map((e) => e.type)).toEqual(['invoke.attempted']);
    const t = end.conclude.terminal;
    expect(t.type).toBe('chat.completed');
    if (t.type !== 'chat.completed') return;
    expect(t.data.ctx.batch).toEqual({ id: 'batch_1', customId: 'c-r1' });
    expect(t.data.answer.usage).toEqual({ prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 });
    expect(t.data.deployment).toBe('d1');
    expect(end.conclude.reply).toMatchObject({ requestId: 'r1', body: { id: 'chatcmpl-r1' }, cached: false });
  });

  it('given a refused line, then chat.failed upstream_rejected with the upstream error; given one never run, then upstream_failed', () => {
    const upstream = { status: 400, type: 'invalid_request_error', code: 'model_not_found', param: 'model', message: 'bad model' };
    const refused = concludeLine(line('r2', T0), { kind: 'failed', status: 400, message: 'bad model', upstream }, full, 8 << 20, T0, 1);
    expect(refused.conclude.terminal).toMatchObject({ type: 'chat.failed', data: { code: 'upstream_rejected', status: 400, upstream } });
    expect(refused.conclude.reply).toMatchObject({ error: { code: 'model_not_found', status: 400 } });
    const never = concludeLine(line('r3', T0), { kind: 'failed', message: 'not run' }, full, 8 << 20, T0, 1);
    expect(never.conclude.terminal).toMatchObject({ type: 'chat.failed', data: { code: 'upstream_failed' } });
  });
});

describe('jsonlLine and pollDelay', () => {
  it('given a streamed request, then its line asks for a whole answer under the request id', () => {
    expect(JSON.parse(jsonlLine('r1', 'chat.completions', { model: 'm', stream: true, stream_options: { include_usage: true }, messages: [] }))).toEqual({
      custom_id: 'r1',
      method: 'POST',
      url: '/v1/chat/completions',
      body: { model: 'm', messages: [] },
    });
  });

  it('given polls, then the wait doubles from pollMs up to maxPollMs', () => {
    const s = { pollMs: 100, maxPollMs: 1000 };
    expect([0, 1, 2, 3, 4, 50].map((n) => pollDelay(n, s))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });
});
