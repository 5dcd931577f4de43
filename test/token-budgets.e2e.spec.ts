import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { jetstreamManager } from '@nats-io/jetstream';
import { parseEvent, Subjects, Topology, type AnyEvent } from '@sluice/contracts';
import { countPromptTokens, startSim, type Sim } from '@sluice/openai-sim';
import { eventually } from '@sluice/bus/testing';
import { SluiceClient } from '@sluice/client';
import { DEV_KEY, defaultConfig, startE2eStack, startRecorder, type E2eStack, type Recorder } from './harness.js';

// Issue 11, item 4: token budgets through the real stack. An unchanged OpenAI SDK app asks with
// a feature header; the simulator (behind a recording proxy) receives the body as the rule
// changed it, counts its prompt tokens, and the request's timeline says what changed and why.

const words = (n: number, word: string) => Array.from({ length: n }, () => word).join(' ');
type Message = OpenAI.ChatCompletionMessageParam;
const system: Message = { role: 'system', content: 'You summarize.' };
const conversation: Message[] = [
  system,
  { role: 'user', content: `Here is the report: ${words(300, 'revenue')}` },
  { role: 'assistant', content: `Noted. ${words(50, 'ok')}` },
  { role: 'user', content: 'Look up the totals.' },
  { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'totals', arguments: '{}' } }] },
  { role: 'tool', tool_call_id: 'call_1', content: words(40, 'total') },
  { role: 'assistant', content: 'The totals are in.' },
  { role: 'user', content: 'Now summarize it in one line.' },
];
/** What the rule keeps: the oldest turn (the report, ~300 tokens, and its answer) goes. */
const kept: Message[] = [system, ...conversation.slice(3)];
/** Over what is kept (~90 tokens), under the whole conversation (~450). */
const MAX_INPUT = 200;

let sim: Sim;
let upstream: Recorder;
let stack: E2eStack;
beforeAll(async () => {
  sim = await startSim({ port: 0 });
  upstream = await startRecorder(sim.url);
  const config = defaultConfig();
  config.tokenBudgets = [
    { id: 'summaries', feature: 'summarize', maxInputTokens: MAX_INPUT, maxOutputTokens: 100, model: 'gpt-4o-mini' },
    { id: 'strict', feature: 'strict', maxInputTokens: 40, onOverflow: 'refuse' },
  ];
  stack = await startE2eStack({ config, upstreamUrl: upstream.url });
});
afterAll(async () => {
  await stack?.close();
  await upstream?.close();
  await sim?.close();
});

const chatCalls = () => upstream.calls.filter((c) => c.path.endsWith('/chat/completions'));

/** The request's `chat.requested`, read back from the stream. */
async function requested(requestId: string): Promise<AnyEvent & { type: 'chat.requested' }> {
  const jsm = await jetstreamManager(stack.nc);
  const msg = await jsm.streams.getMessage(Topology.stream.name, { last_by_subj: Subjects.event('chat.requested', 'dev') });
  const event = parseEvent(msg!.data) as AnyEvent & { type: 'chat.requested' };
  expect(event.requestId).toBe(requestId);
  return event;
}

describe('token budgets through the HTTP door', () => {
  it('trims the oldest turn, caps the output and sets the model before the upstream sees the request, and says so on the timeline', async () => {
    const before = chatCalls().length;
    const { data, response } = await stack
      .openai()
      .chat.completions.create({ model: 'gpt-4o', messages: conversation, max_tokens: 4000 }, { headers: { 'x-sluice-feature': 'summarize' } })
      .withResponse();
    const requestId = response.headers.get('x-sluice-request-id')!;

    // what reached the simulator: the kept messages, tool call and result together
    const calls = chatCalls().slice(before);
    expect(calls).toHaveLength(1);
    const sent = calls[0]!.body;
    expect(sent.messages).toEqual(kept);
    expect(sent.model).toBe('gpt-4o-mini');
    expect(sent.max_tokens).toBe(100);
    // the simulator counted the trimmed prompt, not the client's
    expect(data.usage?.prompt_tokens).toBe(countPromptTokens(kept));
    expect(data.usage?.prompt_tokens).toBeLessThan(countPromptTokens(conversation));
    expect(data.model).toBe('gpt-4o-mini');

    // the stream holds the changed body once, with the facts counted on it
    const event = await requested(requestId);
    expect(event.data.body).toEqual(sent);
    const { promptTokens } = event.data.ctx.request;
    expect(promptTokens).toBeLessThanOrEqual(MAX_INPUT);
    expect(event.data.ctx.request.maxOutputTokens).toBe(100);
    expect(event.data.ctx.request.model).toBe('gpt-4o-mini');
    const changes =
      /token budget summaries: trimmed 1 oldest turn \(2 messages\), (\d+) -> (\d+) prompt tokens; max_tokens 4000 -> 100; model gpt-4o -> gpt-4o-mini$/.exec(
        event.reason,
      );
    expect(Number(changes?.[1])).toBeGreaterThan(MAX_INPUT);
    expect(Number(changes?.[2])).toBe(promptTokens);
    const reason = changes![0];

    // and the ledger's timeline shows it
    const timeline = await eventually(async () => {
      const r = await stack.ledger(`/v1/requests/${requestId}`);
      if (r.outcome !== 'completed') throw new Error(`not completed yet: ${r.outcome}`);
      return r;
    }, 20_000);
    expect(timeline.timeline[0].type).toBe('chat.requested');
    expect(timeline.timeline[0].reason).toContain(reason);
  });

  it("refuses an input over a 'refuse' rule with a coded 400 naming the rule, and nothing goes upstream", async () => {
    const before = chatCalls().length;
    const err = await stack
      .openai()
      .chat.completions.create({ model: 'gpt-4o-mini', messages: conversation }, { headers: { 'x-sluice-feature': 'strict' } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    const e = err as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e.status).toBe(400);
    expect(e.code).toBe('token_budget_exceeded');
    expect(e.param).toBe('messages');
    expect(e.message).toMatch(/Token budget strict allows 40 input tokens; this request has \d+\./);
    expect(chatCalls().length).toBe(before);
  });

  it('leaves a request no rule matches exactly as sent', async () => {
    const before = chatCalls().length;
    await stack.openai().chat.completions.create({ model: 'gpt-4o', messages: conversation, max_tokens: 4000 });
    const sent = chatCalls().slice(before)[0]!.body;
    expect(sent.messages).toEqual(conversation);
    expect(sent.max_tokens).toBe(4000);
    expect(sent.model).toBe('gpt-4o');
  });
});

describe('token budgets through the NATS door', () => {
  it("applies the rule of the body's feature to a streamed request too", async () => {
    const before = chatCalls().length;
    const client = new SluiceClient(stack.nc, { tenant: 'dev', key: DEV_KEY });
    let text = '';
    for await (const reply of client.stream({ model: 'gpt-4o', messages: conversation, feature: 'summarize' })) {
      text += (reply.chunk as OpenAI.ChatCompletionChunk).choices[0]?.delta.content ?? '';
    }
    expect(text.length).toBeGreaterThan(0);
    const sent = chatCalls().slice(before)[0]!.body;
    expect(sent.messages).toEqual(kept);
    expect(sent.model).toBe('gpt-4o-mini');
    expect(sent.max_completion_tokens).toBe(100);
  });
});
