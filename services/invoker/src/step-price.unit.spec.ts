import { describe, expect, it } from 'vitest';
import type { SluiceConfig } from '@sluice/contracts';
import { answer, requestContext, routed } from '@sluice/contracts/testing';
import { A, answered, B, invocation, run, settings, T0, type Stepped } from './fixtures.js';
import { concludeLine } from './upstream-batch-answer.js';

// The price the answering model's tokens are billed at is recorded on the terminal event, from the
// config the request was invoked under, so the ledger bills the same whenever it projects it.

const models = {
  'gpt-4o-mini': { deployments: ['a'], fallback: [], price: { inputPerMTok: 0.15, outputPerMTok: 0.6 } },
  'gpt-4o': { deployments: ['b'], fallback: [], price: { inputPerMTok: 2.5, outputPerMTok: 10, batchInputPerMTok: 1, batchOutputPerMTok: 4 } },
} as unknown as SluiceConfig['models'];
const last = (steps: Stepped[]) => steps[steps.length - 1]!;
const terminalOf = (s: Stepped) => {
  if (s.next.kind !== 'conclude') throw new Error(`expected conclude, got ${s.next.kind}`);
  return s.next.terminal;
};

describe('step: the price recorded on the terminal event', () => {
  it('given the config models, when the upstream answers, then chat.completed records the answering model price', () => {
    const s = last(
      run(invocation([A, B], { models }), [
        [{ kind: 'start' }, T0],
        [answered(), T0 + 120],
      ]),
    );
    expect(terminalOf(s)).toMatchObject({ type: 'chat.completed', data: { price: { inputPerMTok: 0.15, outputPerMTok: 0.6, source: 'config' } } });
  });

  it("given gpt-4o answers, then gpt-4o's price", () => {
    const s = last(
      run(invocation([B], { models }), [
        [{ kind: 'start' }, T0],
        [answered(), T0 + 120],
      ]),
    );
    expect(terminalOf(s).data).toMatchObject({ price: { inputPerMTok: 2.5, outputPerMTok: 10, source: 'config' } });
  });

  it('given the client cancels mid-call, then chat.cancelled records the price of what was streamed', () => {
    const s = last(
      run(invocation([A], { models }), [
        [{ kind: 'start' }, T0],
        [{ kind: 'cancelled', streamed: { text: 'Par' }, latencyMs: 40 }, T0 + 40],
      ]),
    );
    expect(terminalOf(s)).toMatchObject({ type: 'chat.cancelled', data: { price: { inputPerMTok: 0.15, outputPerMTok: 0.6, source: 'config' } } });
  });

  it('given no models (an invoker that does not pass them), then no price is recorded and the ledger bills at its config', () => {
    const s = last(
      run(invocation([A]), [
        [{ kind: 'start' }, T0],
        [answered(), T0 + 120],
      ]),
    );
    expect(terminalOf(s).data).not.toHaveProperty('price');
  });

  it("given a line of an upstream batch, then chat.completed records the model's batch price", () => {
    const ctx = requestContext(undefined, {
      batch: { id: 'batch_1', customId: 'c-r1' },
      replyTo: 'sluice.results.batch.batch_1.r1',
      deadline: T0 + 86_400_000,
    });
    const event = routed('r1', 'acme', { ctx, candidates: [{ model: 'gpt-4o', deployment: 'b' }] });
    const config = { deployments: invocation().deployments, invoker: settings, models } as unknown as SluiceConfig;
    const end = concludeLine({ event, recordedAt: T0 }, { kind: 'answered', status: 200, body: answer('gpt-4o', 10, 5, 'hi').body }, config, 8 << 20, T0, 10);
    expect(end.conclude.terminal).toMatchObject({
      type: 'chat.completed',
      data: { price: { inputPerMTok: 1, outputPerMTok: 4, batch: true, source: 'config' } },
    });
  });
});
