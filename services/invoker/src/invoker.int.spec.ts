import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@sluice/bus/testing';
import { pastDeadline, publishEvent } from '@sluice/bus';
import { invokerConsumer, isError, makeEvent, ServiceName, SYSTEM_TENANT, Topology, type ChatErrorReply, type ChatResult } from '@sluice/contracts';
import { contentOf } from '@sluice/contracts/testing';
import { countText, type Sim } from '@sluice/openai-sim';
import { only, startHarness, TENANT, waitFor, type Harness } from './harness.js';

type Json = Record<string, unknown>;
/** The first choice's delta of a forwarded chat.completion.chunk. */
const deltaOf = (chunk: unknown) => (chunk as { choices: Array<{ delta: Json }> }).choices[0]?.delta ?? {};
/** The content a forwarded chunk carries ('' when none). */
const textOf = (chunk: unknown) => (typeof deltaOf(chunk).content === 'string' ? (deltaOf(chunk).content as string) : '');

/** What the capturing deployment answers every request with. */
const CANNED = {
  id: 'chatcmpl-upstream',
  object: 'chat.completion',
  created: 1_700_000_000,
  model: 'gpt-4o-mini-2024-07-18',
  choices: [{ index: 0, message: { role: 'assistant', content: 'ok', refusal: null }, logprobs: null, finish_reason: 'stop' }],
  usage: { prompt_tokens: 20, completion_tokens: 1, total_tokens: 21 },
  system_fingerprint: 'fp_x',
  service_tier: 'default',
};

let h: Harness;
let sims: Record<string, Sim>;

beforeAll(async () => {
  h = await startHarness(
    {
      primary: { sim: { requestsPerMinute: 100_000, tokensPerMinute: 100_000_000 } },
      second: {},
      broken: { sim: { errorRate: 1 } },
      down1: { sim: { errorRate: 1 } },
      down2: { sim: { errorRate: 1 } },
      failing: { sim: { errorRate: 1 } },
      limited: {},
      hanging: { sim: { timeoutRate: 1 }, timeoutMs: 300 },
      cut: { sim: { tokenLatencyMs: 100 } },
      capture: { capture: CANNED },
      small: { sim: { contextWindow: 40 } },
      throttled: { sim: { requestsPerMinute: 1 } },
      slow: { sim: { tokenLatencyMs: 30 } },
    },
    { maxAttemptsPerDeployment: 2, baseBackoffMs: 5, maxBackoffMs: 50, circuitFailureThreshold: 3, circuitOpenMs: 600_000, concurrency: 16 },
  );
  sims = h.sims;
});

afterAll(async () => {
  await h?.stop();
});

const invoke: Harness['invoke'] = (candidates, opts) => h.invoke(candidates, opts);

describe('invoker against the simulator', () => {
  it('answers a plain request and records the attempt with the upstream rate-limit headroom', async () => {
    sims.primary!.reset();
    const out = await invoke([{ model: 'gpt-4o-mini', deployment: 'primary' }]);
    const result = out.final as ChatResult;
    expect(isError(result)).toBe(false);
    expect(result).toMatchObject({
      requestId: out.requestId,
      model: 'gpt-4o-mini',
      cached: false,
      // the upstream's object whole, its id Sluice's
      body: {
        id: `chatcmpl-${out.requestId}`,
        object: 'chat.completion',
        model: 'gpt-4o-mini',
        choices: [{ message: { role: 'assistant' }, finish_reason: 'stop' }],
      },
    });
    expect(contentOf(result.body)!.length).toBeGreaterThan(0);
    expect(result.body).toMatchObject({ usage: { prompt_tokens_details: expect.any(Object), completion_tokens_details: expect.any(Object) } });
    const stats = sims.primary!.stats();
    expect(result.usage).toEqual({ prompt_tokens: stats.promptTokens, completion_tokens: stats.completionTokens, total_tokens: stats.totalTokens });

    const [attempted] = only(out.events, 'invoke.attempted');
    expect(attempted).toMatchObject({
      id: `${out.requestId}:invoke.attempted:1`,
      data: { attempt: 1, ok: true, status: 200, deployment: 'primary', model: 'gpt-4o-mini' },
    });
    expect(attempted!.reason).toMatch(/upstream remaining: requests \d+, tokens \d+$/);
    const [completed] = only(out.events, 'chat.completed');
    expect(completed!.data).toMatchObject({
      deployment: 'primary',
      attempts: 1,
      cacheKey: `${TENANT}.key-${out.requestId.split('-').pop()}`,
      answer: { model: 'gpt-4o-mini', body: result.body, usage: result.usage },
    });
    expect(only(out.events, 'invoke.failed')).toEqual([]);
  });

  it('streams chunks, then a result whose content is their concatenation and whose usage is what the upstream served', async () => {
    sims.primary!.reset();
    const out = await invoke([{ model: 'gpt-4o-mini', deployment: 'primary' }], { stream: true });
    const result = out.final as ChatResult;
    expect(out.chunks.length).toBeGreaterThan(1);
    expect(out.chunks.every((c) => (c.chunk as Json).id === `chatcmpl-${out.requestId}` && (c.chunk as Json).object === 'chat.completion.chunk')).toBe(true);
    expect(deltaOf(out.chunks[0]!.chunk).role).toBe('assistant');
    expect(out.chunks.slice(1).every((c) => deltaOf(c.chunk).role === undefined)).toBe(true);
    expect(out.chunks.map((c) => textOf(c.chunk)).join('')).toBe(contentOf(result.body));
    // Sluice asked for the usage chunk, the client did not: it sees none
    expect(out.chunks.every((c) => !('usage' in (c.chunk as Json)))).toBe(true);
    const stats = sims.primary!.stats();
    expect(stats.completions).toBe(1);
    expect(result.usage).toEqual({ prompt_tokens: stats.promptTokens, completion_tokens: stats.completionTokens, total_tokens: stats.totalTokens });
    expect(result.body).toMatchObject({ id: `chatcmpl-${out.requestId}`, object: 'chat.completion', system_fingerprint: expect.any(String) });
    expect(only(out.events, 'chat.completed')[0]!.data.answer.body).toEqual(result.body);
  });

  it('falls back to the next candidate, opens the circuit after the threshold, then skips the broken deployment', async () => {
    const candidates = [
      { model: 'gpt-4o-mini', deployment: 'broken' },
      { model: 'gpt-4o', deployment: 'second' },
    ];
    const first = await invoke(candidates);
    expect((first.final as ChatResult).model).toBe('gpt-4o');
    expect(only(first.events, 'invoke.failed').map((e) => [e.data.attempt, e.data.deployment, e.data.status, e.data.retryable])).toEqual([
      [1, 'broken', 500, true],
      [2, 'broken', 500, true],
    ]);
    expect(only(first.events, 'invoke.attempted').map((e) => [e.data.attempt, e.data.deployment, e.data.ok])).toEqual([
      [1, 'broken', false],
      [2, 'broken', false],
      [3, 'second', true],
    ]);
    expect(only(first.events, 'chat.completed')[0]!.data).toMatchObject({ deployment: 'second', attempts: 3, answer: { model: 'gpt-4o' } });

    // the third consecutive failure opens the circuit; the retry then skips it
    const second = await invoke(candidates);
    expect(only(second.events, 'invoke.attempted').map((e) => [e.data.deployment, e.data.ok])).toEqual([
      ['broken', false],
      ['second', true],
    ]);
    const opened = await waitFor(() => h.events.find((e) => e.type === 'circuit.opened'));
    expect(opened).toMatchObject({ tenant: SYSTEM_TENANT, data: { deployment: 'broken', failures: 3, openForMs: 600_000 } });
    expect(opened.requestId).toMatch(/^circuit-broken-1-\d+$/);

    const brokenCalls = sims.broken!.stats().requests;
    const third = await invoke(candidates);
    expect(sims.broken!.stats().requests).toBe(brokenCalls);
    expect(only(third.events, 'invoke.attempted').map((e) => [e.data.attempt, e.data.deployment, e.data.ok])).toEqual([[1, 'second', true]]);
    expect(only(third.events, 'invoke.attempted')[0]!.reason).toContain('skipped gpt-4o-mini@broken: circuit open');
  });

  it('honours Retry-After on a 429 and then succeeds on the same deployment', async () => {
    const prompt = 'Tell me about rate limits';
    const limited = sims.limited!;
    // learn what one answer costs, then allow a bit less than two per minute
    await invoke([{ model: 'gpt-4o-mini', deployment: 'limited' }], { prompt });
    const cost = limited.stats().totalTokens;
    limited.setFaults({ tokensPerMinute: 2 * cost - 3 });
    limited.reset();
    await invoke([{ model: 'gpt-4o-mini', deployment: 'limited' }], { prompt });

    const out = await invoke([{ model: 'gpt-4o-mini', deployment: 'limited' }], { prompt });
    expect(isError(out.final)).toBe(false);
    const [failed] = only(out.events, 'invoke.failed');
    expect(failed!.data).toMatchObject({ attempt: 1, status: 429, retryable: true });
    expect(failed!.data.retryAfterMs).toBeGreaterThan(0);
    expect(only(out.events, 'invoke.attempted')[0]!.reason).toMatch(/failed with 429 .*; upstream remaining: tokens \d+$/);
    expect(only(out.events, 'invoke.attempted').map((e) => [e.data.attempt, e.data.ok])).toEqual([
      [1, false],
      [2, true],
    ]);
    // a retry before the advertised time would have been throttled again
    expect(limited.stats()).toMatchObject({ throttled: 1, completions: 2 });
  });

  it('fails with upstream_failed and an error reply when every candidate fails', async () => {
    const out = await invoke([
      { model: 'gpt-4o-mini', deployment: 'down1' },
      { model: 'gpt-4o', deployment: 'down2' },
    ]);
    expect(out.final).toMatchObject({ requestId: out.requestId, error: { code: 'upstream_failed', status: 502 } });
    expect(only(out.events, 'invoke.failed').map((e) => e.data.deployment)).toEqual(['down1', 'down1', 'down2', 'down2']);
    const [failed] = only(out.events, 'chat.failed');
    expect(failed!.data).toMatchObject({ code: 'upstream_failed', status: 502, attempts: 4, replyTo: `_INBOX.test.${out.requestId}` });
    expect(failed!.data.message).toContain('The server had an error');
  });

  it('does not retry or fall back when the upstream refuses the model (404), and passes its error on', async () => {
    const before = sims.second!.stats().requests;
    const out = await invoke([
      { model: 'no-such-model', deployment: 'primary' },
      { model: 'gpt-4o', deployment: 'second' },
    ]);
    expect(out.final).toMatchObject({ error: { code: 'model_not_found', status: 404, type: 'invalid_request_error', param: null } });
    expect((out.final as ChatErrorReply).error.message).toContain('no-such-model');
    expect(only(out.events, 'invoke.failed').map((e) => [e.data.status, e.data.retryable])).toEqual([[404, false]]);
    expect(sims.second!.stats().requests).toBe(before);
  });

  it('times out a hanging deployment and falls back', async () => {
    const out = await invoke([
      { model: 'gpt-4o-mini', deployment: 'hanging' },
      { model: 'gpt-4o', deployment: 'second' },
    ]);
    expect((out.final as ChatResult).model).toBe('gpt-4o');
    expect(only(out.events, 'invoke.failed').map((e) => [e.data.deployment, e.data.retryable, e.data.error])).toEqual([
      ['hanging', true, 'no progress for 300 ms'],
      ['hanging', true, 'no progress for 300 ms'],
    ]);
  });

  it('fails without retrying when the upstream breaks after chunks were forwarded', async () => {
    const cut = sims.cut!;
    let closing: Promise<void> | undefined;
    const out = await invoke(
      [
        { model: 'gpt-4o-mini', deployment: 'cut' },
        { model: 'gpt-4o', deployment: 'second' },
      ],
      { stream: true, onChunk: () => void (closing ??= cut.close()) },
    );
    expect(out.chunks.length).toBeGreaterThanOrEqual(1);
    expect(out.final).toMatchObject({ error: { code: 'upstream_failed' } });
    expect(only(out.events, 'invoke.attempted').map((e) => e.data.deployment)).toEqual(['cut']);
    expect(only(out.events, 'invoke.failed')[0]!.data).toMatchObject({ retryable: true, error: expect.stringContaining('connection lost mid-answer') });
    expect(only(out.events, 'chat.failed')[0]!.data.attempts).toBe(1);
    await closing;
  });

  it('answers deadline_exceeded without calling anyone when the deadline has passed', async () => {
    const before = sims.primary!.stats().requests;
    const out = await invoke([{ model: 'gpt-4o-mini', deployment: 'primary' }], { deadlineMs: -1 });
    expect(out.final).toMatchObject({ error: { code: 'deadline_exceeded', status: 504 } });
    expect(only(out.events, 'chat.failed')[0]!.data.attempts).toBe(0);
    expect(sims.primary!.stats().requests).toBe(before);
  });
});

describe('one terminal event per request', () => {
  it('serves but neither answers nor stores a request another stage ended first', async () => {
    const event = await h.routed([{ model: 'gpt-4o-mini', deployment: 'primary' }]);
    const { requestId } = event;
    const served = sims.primary!.stats().requests;
    // a limiter redelivered the request after its deadline (its ack lost with a node) and ended it
    const expired = pastDeadline(event, ServiceName.Limiter, event.data.ctx.deadline + 1)!;
    await publishEvent(h.bus.js, expired.event);
    const replies: unknown[] = [];
    const sub = h.bus.nc.subscribe(event.data.ctx.replyTo!, { callback: (_e, m) => void replies.push(m.json()) });
    try {
      // while the invoker, which had the admission first, calls the upstream
      await publishEvent(h.bus.js, event);
      await waitFor(() => h.events.find((e) => e.requestId === requestId && e.type === 'invoke.attempted'));
      const lane = invokerConsumer('standard').durable;
      await eventually(async () => {
        const info = await h.bus.jsm.consumers.info(Topology.stream.name, lane);
        return info.num_pending === 0 && info.num_ack_pending === 0;
      });
      expect(sims.primary!.stats().requests).toBe(served + 1);
      expect((await h.streamed(requestId)).map((e) => e.type)).toEqual(['chat.requested', 'chat.failed', 'chat.routed', 'invoke.attempted']);
      expect(replies).toEqual([]);
      expect(await h.stored(requestId)).toBeUndefined();
    } finally {
      sub.unsubscribe();
    }
  });
});

describe('a redelivered chat.routed', () => {
  it('is answered from the stored answer without calling the upstream again', async () => {
    const out = await invoke([{ model: 'gpt-4o-mini', deployment: 'primary' }]);
    const [completed] = only(out.events, 'chat.completed');
    expect(await h.stored(out.requestId)).toEqual({
      requestId: out.requestId,
      tenant: TENANT,
      result: out.final,
      completedAt: completed!.at,
      event: completed,
    });
    const served = sims.primary!.stats();

    // what JetStream does when the invoker died after answering but before acking its input
    const again = await h.deliver(out.routed, { deliveryCount: 2 });
    expect(sims.primary!.stats()).toEqual(served);
    expect(again.final).toEqual(out.final);
    expect(only(again.events, 'invoke.attempted')).toEqual([]);
    expect(only(again.events, 'chat.completed').map((e) => e.id)).toEqual([completed!.id]);
    expect((await h.streamed(out.requestId)).map((e) => e.type)).toEqual(['chat.requested', 'chat.routed', 'invoke.attempted', 'chat.completed']);
  });

  it('replays a stored failure too, without calling the upstream again', async () => {
    const out = await invoke([{ model: 'gpt-4o-mini', deployment: 'failing' }]);
    expect(out.final).toMatchObject({ error: { code: 'upstream_failed' } });
    const [failed] = only(out.events, 'chat.failed');
    expect(await h.stored(out.requestId)).toEqual({ requestId: out.requestId, tenant: TENANT, result: out.final, completedAt: failed!.at, event: failed });
    const calls = sims.failing!.stats().requests;

    const again = await h.deliver(out.routed, { deliveryCount: 3 });
    expect(sims.failing!.stats().requests).toBe(calls);
    expect(again.final).toEqual(out.final);
    expect(again.events).toEqual([failed]);
  });

  it('repeats the upstream call under the same Idempotency-Key when the answer was served but not stored', async () => {
    const out = await invoke([{ model: 'gpt-4o-mini', deployment: 'primary' }]);
    // the invoker died after the upstream answered and before the answer reached the bucket
    await h.forget(out.requestId);
    expect(await h.stored(out.requestId)).toBeUndefined();
    const served = sims.primary!.stats();

    const again = await h.deliver(out.routed, { deliveryCount: 2 });
    // the upstream recognised the repeat: nothing served or charged twice, same answer
    expect(sims.primary!.stats()).toMatchObject({ completions: served.completions, promptTokens: served.promptTokens, replays: served.replays + 1 });
    expect(again.final).toMatchObject({ body: (out.final as ChatResult).body, usage: (out.final as ChatResult).usage });
    expect(only(again.events, 'invoke.attempted')[0]?.id).toBe(`${out.requestId}:invoke.attempted:2.1`);
    expect((await h.stored(out.requestId))?.result).toEqual(again.final);
  });

  it("calls the upstream when nothing was stored, with attempt ids apart from the first delivery's", async () => {
    const routed = await h.routed([{ model: 'gpt-4o-mini', deployment: 'primary' }]);
    const { requestId } = routed;
    // the first delivery recorded a failed attempt, then died during its retry
    const died = { requestId, tenant: TENANT, service: ServiceName.Invoker, at: Date.now(), reason: 'failed with 500', suffix: 1 };
    await publishEvent(
      h.bus.js,
      makeEvent('invoke.attempted', died, { attempt: 1, model: 'gpt-4o-mini', deployment: 'primary', ok: false, status: 500, latencyMs: 3 }),
    );
    const completions = sims.primary!.stats().completions;

    const out = await h.deliver(routed, { deliveryCount: 2 });
    expect(isError(out.final)).toBe(false);
    expect(sims.primary!.stats().completions).toBe(completions + 1);
    const [attempted] = only(out.events, 'invoke.attempted');
    expect(attempted).toMatchObject({ id: `${requestId}:invoke.attempted:2.1`, data: { attempt: 1, ok: true } });
    expect(attempted!.reason).toContain('delivery 2: no stored answer');
    const kept = only(await h.streamed(requestId), 'invoke.attempted');
    expect(kept.map((e) => [e.id, e.data.ok])).toEqual([
      [`${requestId}:invoke.attempted:1`, false],
      [`${requestId}:invoke.attempted:2.1`, true],
    ]);
    expect((await h.stored(requestId))?.result).toEqual(out.final);
  });
});

describe('the body passes through whole', () => {
  it("sends the client's body as it came, with only Sluice's decisions applied and each named on the attempt", async () => {
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    const body = {
      model: 'auto',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Weather?' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
          ],
        },
        {
          role: 'assistant',
          content: null,
          tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }],
        },
        { role: 'tool', tool_call_id: 'call_1', content: '18C' },
      ],
      tools,
      tool_choice: 'auto',
      response_format: { type: 'json_schema', json_schema: { name: 'w', schema: { type: 'object' } } },
      logit_bias: { '50256': -100 },
      max_tokens: 500,
      seed: 7,
      stop: ['\n\n', 'END'],
      metadata: { app: 'x' },
      some_future_field: { nested: [1, 2] },
      user: 'u1',
      feature: 'weather',
      priority: 'critical',
    };
    const out = await invoke([{ model: 'gpt-4o-mini', deployment: 'capture' }], { body, maxTokens: 100 });
    const [sent] = h.captured.capture!.slice(-1);
    const { feature: _f, priority: _p, ...rest } = body;
    expect(sent).toMatchObject({ path: '/v1/chat/completions', headers: { 'idempotency-key': `sluice:${out.requestId}:capture:gpt-4o-mini` } });
    expect(sent!.body).toEqual({ ...rest, model: 'gpt-4o-mini', max_tokens: 100 });
    expect(only(out.events, 'invoke.attempted')[0]!.reason).toBe(
      `sent with model "auto" -> "gpt-4o-mini", max_tokens 500 -> 100 (degrade cap), feature, priority removed (Sluice's hints); gpt-4o-mini@capture answered 200 in ${only(out.events, 'invoke.attempted')[0]!.data.latencyMs} ms`,
    );
    // the answer whole: the upstream's model, fingerprint and tier; Sluice's id and model name beside it
    expect(out.final).toMatchObject({ model: 'gpt-4o-mini', body: { ...CANNED, id: `chatcmpl-${out.requestId}` }, usage: CANNED.usage });
  });

  it('caps max_completion_tokens when the client set none, and leaves a lower cap of its own alone', async () => {
    await invoke([{ model: 'gpt-4o-mini', deployment: 'capture' }], { maxTokens: 100 });
    expect(h.captured.capture!.slice(-1)[0]!.body).toMatchObject({ max_completion_tokens: 100 });
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 20 };
    const out = await invoke([{ model: 'gpt-4o-mini', deployment: 'capture' }], { body, maxTokens: 100 });
    expect(h.captured.capture!.slice(-1)[0]!.body).toEqual(body);
    expect(only(out.events, 'invoke.attempted')[0]!.reason).not.toContain('sent with');
  });

  it('sends an embeddings body as it came (no encoding_format added), and passes the list back whole', async () => {
    sims.primary!.reset();
    const body = { model: 'text-embedding-3-small', input: ['one', 'two'] };
    const out = await invoke([{ model: 'text-embedding-3-small', deployment: 'primary' }], { body, endpoint: 'embeddings' });
    const result = out.final as ChatResult;
    expect(result.body).toMatchObject({ object: 'list', data: [{ object: 'embedding', index: 0 }, { index: 1 }] });
    expect(Array.isArray((result.body as { data: Array<{ embedding: unknown }> }).data[0]!.embedding)).toBe(true);
    expect(result.usage).toMatchObject({ prompt_tokens: sims.primary!.stats().embeddingTokens, completion_tokens: 0 });
  });

  it("fails with internal_error when ctx.requestSeq does not point at the request's chat.requested", async () => {
    const other = await h.routed([{ model: 'gpt-4o-mini', deployment: 'primary' }]);
    const out = await invoke([{ model: 'gpt-4o-mini', deployment: 'primary' }], { requestSeq: other.data.ctx.requestSeq! });
    expect(out.final).toMatchObject({ error: { code: 'internal_error', status: 500 } });
    expect(only(out.events, 'chat.failed')[0]!.reason).toMatch(/^request body unreadable: sequence \d+ of SLUICE_EVENTS is chat.requested of req-/);
    expect(only(out.events, 'invoke.attempted')).toEqual([]);
  });
});

describe('the answer passes through whole', () => {
  const weather = {
    messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
    tools: [
      { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } },
    ],
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
  };

  it('forwards streamed tool calls as indexed deltas and assembles them into the completion', async () => {
    const body = { model: 'gpt-4o-mini', stream: true, ...weather };
    const out = await invoke([{ model: 'gpt-4o-mini', deployment: 'primary' }], { body, stream: true });
    const result = out.final as ChatResult;
    const calls = out.chunks.flatMap((c) => (deltaOf(c.chunk).tool_calls as Array<{ index: number; function?: { name?: string; arguments?: string } }>) ?? []);
    expect(calls.length).toBeGreaterThan(1);
    expect(calls.every((t) => t.index === 0)).toBe(true);
    const message = (
      result.body as { choices: Array<{ message: { tool_calls: Array<{ function: { name: string; arguments: string } }> }; finish_reason: string }> }
    ).choices[0]!;
    expect(message.finish_reason).toBe('tool_calls');
    expect(message.message.tool_calls[0]!.function.name).toBe('get_weather');
    expect(message.message.tool_calls[0]!.function.arguments).toBe(calls.map((t) => t.function?.arguments ?? '').join(''));
    expect(JSON.parse(message.message.tool_calls[0]!.function.arguments)).toHaveProperty('city');
  });

  it('answers a Responses API request whole', async () => {
    sims.primary!.reset();
    const body = { model: 'gpt-4o-mini', input: 'Say hello', instructions: 'Be brief.' };
    const out = await invoke([{ model: 'gpt-4o-mini', deployment: 'primary' }], { body, endpoint: 'responses' });
    const result = out.final as ChatResult;
    expect(result.body).toMatchObject({ object: 'response', status: 'completed', output: expect.any(Array) });
    const stats = sims.primary!.stats();
    expect(stats.responses).toBe(1);
    expect(result.usage).toEqual({ prompt_tokens: stats.promptTokens, completion_tokens: stats.completionTokens, total_tokens: stats.totalTokens });
  });

  it('streams a Responses API request event by event, and answers with the completed response', async () => {
    const body = { model: 'gpt-4o-mini', input: 'Say hello', stream: true };
    const out = await invoke([{ model: 'gpt-4o-mini', deployment: 'primary' }], { body, endpoint: 'responses', stream: true });
    const types = out.chunks.map((c) => (c.chunk as Json).type);
    expect(types[0]).toBe('response.created');
    expect(types).toContain('response.output_text.delta');
    expect(types[types.length - 1]).toBe('response.completed');
    const completed = out.chunks[out.chunks.length - 1]!.chunk as { response: unknown };
    expect((out.final as ChatResult).body).toEqual(completed.response);
  });
});

describe('upstream errors keep their meaning', () => {
  it('passes a 400 context_length_exceeded to the client without retrying, falling back or tripping the circuit', async () => {
    const prompt = 'This prompt is far longer than the tiny context window of the small deployment allows, '.repeat(3);
    const candidates = [
      { model: 'gpt-4o-mini', deployment: 'small' },
      { model: 'gpt-4o', deployment: 'second' },
    ];
    const second = sims.second!.stats().requests;
    for (let i = 0; i < 4; i++) {
      const out = await invoke(candidates, { prompt });
      expect(out.final).toMatchObject({ error: { code: 'context_length_exceeded', status: 400, type: 'invalid_request_error', param: 'messages' } });
      expect(only(out.events, 'invoke.failed').map((e) => [e.data.status, e.data.retryable])).toEqual([[400, false]]);
      expect(only(out.events, 'chat.failed')[0]!.data).toMatchObject({ code: 'upstream_rejected', status: 400, upstream: { code: 'context_length_exceeded' } });
    }
    expect(sims.small!.stats().requests).toBe(4);
    expect(sims.second!.stats().requests).toBe(second);
    expect(h.events.filter((e) => e.type === 'circuit.opened' && e.data.deployment === 'small')).toEqual([]);
  });

  it("ends as 429 rate_limit_exceeded with the upstream's wait when retries cannot absorb its 429", async () => {
    await invoke([{ model: 'gpt-4o-mini', deployment: 'throttled' }]);
    const out = await invoke([{ model: 'gpt-4o-mini', deployment: 'throttled' }], { deadlineMs: 5_000 });
    expect(out.final).toMatchObject({ error: { code: 'rate_limit_exceeded', status: 429 } });
    expect((out.final as ChatErrorReply).error.retryAfterMs).toBeGreaterThan(0);
    expect(only(out.events, 'chat.failed')[0]!.data).toMatchObject({ code: 'rate_limit_exceeded', status: 429, upstream: { status: 429 } });
  });
});

describe('a client that leaves stops the work', () => {
  it('stops the upstream stream at once and ends the request as chat.cancelled with the streamed tokens counted', async () => {
    const slow = sims.slow!;
    slow.reset();
    let worded = 0;
    const out = await invoke([{ model: 'gpt-4o-mini', deployment: 'slow' }], {
      stream: true,
      prompt: 'Tell me a long story about rivers and mountains and the sea',
      // the client leaves after three chunks with words
      onChunk: (c) => {
        if (deltaOf(c.chunk).content && ++worded === 3) h.cancel(c.requestId);
      },
    });
    expect(out.final).toMatchObject({ error: { code: 'request_cancelled', status: 499 } });
    const [ended] = only(out.events, 'chat.cancelled');
    expect(ended!.data).toMatchObject({ deployment: 'slow', attempts: 1, counted: true, usage: { prompt_tokens: 12 } });
    // what reached the client is what is billed (a chunk may have been in flight when it left)
    const text = out.chunks.map((c) => textOf(c.chunk)).join('');
    expect(ended!.data.usage.completion_tokens).toBeGreaterThanOrEqual(3);
    expect(ended!.data.usage.completion_tokens).toBeLessThanOrEqual(countText(text) + 1);
    // the simulator saw its connection close mid-stream, and served nothing in full
    await waitFor(() => (slow.stats().aborted === 1 ? true : undefined));
    expect(slow.stats().completions).toBe(0);
    expect(only(out.events, 'invoke.attempted')).toEqual([]);
    expect((await h.stored(out.requestId))?.event.type).toBe('chat.cancelled');
  });

  it('cancels a request whose cancel arrived before it did, without calling the upstream', async () => {
    const routed = await h.routed([{ model: 'gpt-4o-mini', deployment: 'slow' }]);
    const before = sims.slow!.stats().requests;
    h.cancel(routed.requestId);
    await h.bus.nc.flush();
    const out = await h.deliver(routed, { deliveryCount: 1 });
    expect(only(out.events, 'chat.cancelled')[0]!.data).toMatchObject({ attempts: 0, counted: false, usage: { total_tokens: 0 } });
    expect(sims.slow!.stats().requests).toBe(before);
  });
});
