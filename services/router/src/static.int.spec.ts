import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishEvent } from '@sluice/bus';
import { minimalConfig, startTestBus, type TestBus } from '@sluice/bus/testing';
import { ChatAssembler, parseConfig, type ChatChunk, type ChatRequest, type SluiceEvent } from '@sluice/contracts';
import { chatRequest, contentOf, missed, requestContext, requested } from '@sluice/contracts/testing';
import { answerStatic } from './static.js';

// Level 3 reads the question back from the real stream (one message get by ctx.requestSeq) and
// answers its category's static answer; a body that cannot be read still gets the fallback.
const config = parseConfig({
  ...minimalConfig([{ id: 'acme' }]),
  router: {
    staticFallback: 'We are busy; back soon.',
    staticAnswers: [
      { category: 'billing', keywords: ['refund', 'invoice'], answer: 'Billing: https://example.com/billing' },
      { category: 'human', keywords: ['human', 'agent', 'support'], answer: 'Write to support@example.com' },
    ],
  },
});
const NOW = 1_700_000_000_000;
const ROUTE_REASON = 'degraded to level 3 (static fallback)';

let env: TestBus;
let n = 0;
beforeAll(async () => {
  env = await startTestBus(config, { name: 'router-static' });
});
afterAll(async () => {
  await env?.stop();
});

/** A request whose chat.requested (with `body`) is in the stream, as it reaches the router: its cache miss. */
async function stored(body: unknown, request: Partial<ChatRequest> = {}) {
  const requestId = `r-${++n}`;
  const ctx = requestContext(chatRequest(request), { replyTo: `inbox.${requestId}`, deadline: NOW + 60_000 });
  const ack = await publishEvent(env.bus.js, requested(requestId, 'acme', { ctx, body }));
  return missed(requestId, 'acme', { ctx: { ...ctx, requestSeq: ack.seq } });
}

const completedOf = (d: Awaited<ReturnType<typeof answerStatic>>) => d.events[0] as SluiceEvent<'chat.completed'>;

describe('answerStatic', () => {
  it('given a chat whose last user turn asks for a refund, then the billing answer, priced at zero, the category on the reason', async () => {
    const miss = await stored({
      model: 'auto',
      messages: [
        { role: 'user', content: 'human?' },
        { role: 'user', content: 'Where is my refund?' },
      ],
    });
    const d = await answerStatic(env.bus, config, miss, ROUTE_REASON, NOW);
    const completed = completedOf(d);
    expect(completed).toMatchObject({
      type: 'chat.completed',
      service: 'router',
      at: NOW,
      reason: `${ROUTE_REASON}: category billing (refund)`,
      data: {
        deployment: 'static-fallback',
        attempts: 0,
        upstreamLatencyMs: 0,
        price: { inputPerMTok: 0, outputPerMTok: 0, source: 'static' },
        answer: { model: 'static-fallback', usage: { total_tokens: 0 } },
      },
    });
    expect(contentOf(completed.data.answer.body)).toBe('Billing: https://example.com/billing');
    expect(d.replies).toEqual([{ to: `inbox.${miss.requestId}`, reply: expect.objectContaining({ model: 'static-fallback', cached: false }) }]);
  });

  it('given a streamed Responses request for a human, then the human answer as chunks, then the result', async () => {
    const miss = await stored({ model: 'auto', input: 'Can I talk to a human agent?', stream: true }, { endpoint: 'responses', stream: true });
    const d = await answerStatic(env.bus, config, miss, ROUTE_REASON, NOW);
    expect(completedOf(d).reason).toBe(`${ROUTE_REASON}: category human (human, agent)`);
    const last = d.replies.at(-1)!.reply as { body: { output: Array<{ content: Array<{ text: string }> }> } };
    expect(last.body.output[0]!.content[0]!.text).toBe('Write to support@example.com');
    expect(d.replies.slice(0, -1).every((r) => 'chunk' in r.reply)).toBe(true);
    expect(d.replies.length).toBeGreaterThan(1);
  });

  it('given a streamed chat, then its chunks add up to the category answer', async () => {
    const miss = await stored({ model: 'auto', messages: [{ role: 'user', content: 'invoice' }], stream: true }, { stream: true });
    const d = await answerStatic(env.bus, config, miss, ROUTE_REASON, NOW);
    const assembler = new ChatAssembler();
    for (const r of d.replies.slice(0, -1)) assembler.add((r.reply as ChatChunk).chunk);
    expect(contentOf(assembler.completion(miss.requestId, 0))).toBe('Billing: https://example.com/billing');
  });

  it('given a question of no category, then the fallback and the reason says so', async () => {
    const miss = await stored({ model: 'auto', messages: [{ role: 'user', content: 'What is the capital of France?' }] });
    const d = await answerStatic(env.bus, config, miss, ROUTE_REASON, NOW);
    expect(contentOf(completedOf(d).data.answer.body)).toBe('We are busy; back soon.');
    expect(completedOf(d).reason).toBe(`${ROUTE_REASON}: the fallback answer: no category matched`);
  });

  it('given a sequence that holds another request, or no bus, then the fallback, never an error', async () => {
    const other = await stored({ model: 'auto', messages: [{ role: 'user', content: 'refund' }] });
    const wrong = missed('someone-else', 'acme', { ctx: other.data.ctx });
    const d = await answerStatic(env.bus, config, wrong, ROUTE_REASON, NOW);
    expect(contentOf(completedOf(d).data.answer.body)).toBe('We are busy; back soon.');
    expect(completedOf(d).reason).toMatch(/: the fallback answer: the request's body could not be read \(sequence \d+ .* is chat\.requested of r-\d+/);
    const noBus = await answerStatic(undefined, config, other, ROUTE_REASON, NOW);
    expect(completedOf(noBus).reason).toBe(`${ROUTE_REASON}: the fallback answer: the request's body is not in the stream`);
  });

  it('given no categories configured, then the fallback without reading the body', async () => {
    const plain = parseConfig({ ...minimalConfig([{ id: 'acme' }]), router: { staticFallback: 'Plain.' } });
    const miss = missed('unread', 'acme', { ctx: requestContext(chatRequest(), { requestSeq: 999_999 }) });
    const d = await answerStatic(env.bus, plain, miss, ROUTE_REASON, NOW);
    expect(contentOf(completedOf(d).data.answer.body)).toBe('Plain.');
    expect(completedOf(d).reason).toBe(`${ROUTE_REASON}: the fallback answer: no categories configured`);
  });
});
