import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishEvent } from '@sluice/bus';
import { isError, makeEvent, ServiceName, SYSTEM_TENANT, type ChatErrorReply, type ChatResult } from '@sluice/contracts';
import type { Sim } from '@sluice/openai-sim';
import { only, startHarness, TENANT, waitFor, type Harness } from './harness.js';

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
    expect(result).toMatchObject({ requestId: out.requestId, model: 'gpt-4o-mini', cached: false, finishReason: 'stop', message: { role: 'assistant' } });
    expect(result.message.content.length).toBeGreaterThan(0);
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
      answer: { model: 'gpt-4o-mini', message: result.message, usage: result.usage },
    });
    expect(only(out.events, 'invoke.failed')).toEqual([]);
  });

  it('streams chunks, then a result whose content is their concatenation and whose usage is what the upstream served', async () => {
    sims.primary!.reset();
    const out = await invoke([{ model: 'gpt-4o-mini', deployment: 'primary' }], { stream: true });
    const result = out.final as ChatResult;
    expect(out.chunks.length).toBeGreaterThan(1);
    expect(out.chunks[0]!.chunk.role).toBe('assistant');
    expect(out.chunks.slice(1).every((c) => c.chunk.role === undefined)).toBe(true);
    expect(out.chunks.map((c) => c.chunk.content).join('')).toBe(result.message.content);
    const stats = sims.primary!.stats();
    expect(stats.completions).toBe(1);
    expect(result.usage).toEqual({ prompt_tokens: stats.promptTokens, completion_tokens: stats.completionTokens, total_tokens: stats.totalTokens });
    expect(only(out.events, 'chat.completed')[0]!.data.answer.message.content).toBe(result.message.content);
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

  it('does not retry or fall back when the upstream refuses the model (404)', async () => {
    const before = sims.second!.stats().requests;
    const out = await invoke([
      { model: 'no-such-model', deployment: 'primary' },
      { model: 'gpt-4o', deployment: 'second' },
    ]);
    expect(out.final).toMatchObject({ error: { code: 'upstream_failed', status: 502 } });
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
    expect((await h.streamed(out.requestId)).map((e) => e.type)).toEqual(['chat.routed', 'invoke.attempted', 'chat.completed']);
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
    expect(again.final).toMatchObject({ message: (out.final as ChatResult).message, usage: (out.final as ChatResult).usage });
    expect(only(again.events, 'invoke.attempted')[0]?.id).toBe(`${out.requestId}:invoke.attempted:2.1`);
    expect((await h.stored(out.requestId))?.result).toEqual(again.final);
  });

  it("calls the upstream when nothing was stored, with attempt ids apart from the first delivery's", async () => {
    const routed = h.routed([{ model: 'gpt-4o-mini', deployment: 'primary' }]);
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
