import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { type Sim, type SimStats, startSim } from './mod.js';
import { countPromptTokens } from './tokens.js';

const messages = [{ role: 'user' as const, content: 'Please fail sometimes.' }];
let sims: Sim[] = [];

async function start(opts: Parameters<typeof startSim>[0] = {}, clientOpts: { timeout?: number } = {}) {
  const sim = await startSim(opts);
  sims.push(sim);
  const client = new OpenAI({ baseURL: sim.url, apiKey: 'x', maxRetries: 0, ...clientOpts });
  return { sim, client, admin: sim.url.replace(/\/v1$/, '/admin') };
}
afterEach(async () => {
  await Promise.all(sims.map((s) => s.close()));
  sims = [];
});

const post = (url: string, body?: unknown) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });

describe('failure injection', () => {
  it('answers 500 server_error at errorRate 1 and counts no tokens', async () => {
    const { sim, client } = await start({ errorRate: 1 });
    const err = await client.chat.completions.create({ model: 'gpt-4o-mini', messages }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    expect(err).toMatchObject({ status: 500, type: 'server_error' });
    expect((err as Error).message).toContain('The server had an error');
    expect(sim.stats()).toMatchObject({ requests: 1, errors: 1, completions: 0, promptTokens: 0, completionTokens: 0, totalTokens: 0 });
  });

  it('does not inject errors into embeddings', async () => {
    const { sim, client } = await start({ errorRate: 1 });
    await client.embeddings.create({ model: 'text-embedding-3-small', input: 'fine' });
    expect(sim.stats()).toMatchObject({ embeddings: 1, errors: 0 });
  });

  it('switches errorRate at run time over /admin/faults', async () => {
    const { sim, client, admin } = await start();
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages });
    const on = await post(`${admin}/faults`, { errorRate: 1 });
    expect(on.status).toBe(200);
    expect(await on.json()).toEqual({
      latencyMs: 0,
      tokenLatencyMs: 0,
      errorRate: 1,
      timeoutRate: 0,
      requestsPerMinute: null,
      tokensPerMinute: null,
      burstSeconds: 60,
      batchDelayMs: 0,
      batchWindowMs: 86_400_000,
    });
    await expect(client.chat.completions.create({ model: 'gpt-4o-mini', messages })).rejects.toBeInstanceOf(OpenAI.InternalServerError);
    await post(`${admin}/faults`, { errorRate: 0 });
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages });
    expect(sim.stats()).toMatchObject({ requests: 3, completions: 2, errors: 1 });

    sim.setFaults({ errorRate: 1 });
    await expect(client.chat.completions.create({ model: 'gpt-4o-mini', messages })).rejects.toBeInstanceOf(OpenAI.InternalServerError);
    expect(() => sim.setFaults({ errorRate: 7 })).toThrow(RangeError);
  });

  it('rejects invalid fault settings with 400 and leaves them unchanged', async () => {
    const { admin } = await start();
    const bad = await post(`${admin}/faults`, { errorRate: 2 });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toContain('errorRate');
    const typo = await post(`${admin}/faults`, { errorrate: 0.1 });
    expect(typo.status).toBe(400);
    const current = (await (await fetch(`${admin}/faults`)).json()) as { errorRate: number };
    expect(current.errorRate).toBe(0);
  });

  it('hangs requests at timeoutRate 1 until the client gives up', async () => {
    const { sim, client } = await start({ timeoutRate: 1 }, { timeout: 200 });
    const err = await client.chat.completions.create({ model: 'gpt-4o-mini', messages }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
    expect(sim.stats()).toMatchObject({ requests: 1, timeouts: 1, completions: 0, errors: 0, totalTokens: 0 });
  });

  it('close() releases hanging requests', async () => {
    const { sim } = await start({ timeoutRate: 1 });
    const pending = fetch(`${sim.url}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages }),
    }).then(
      () => 'answered',
      () => 'dropped',
    );
    while (sim.stats().timeouts === 0) await sleep(5);
    await sim.close();
    expect(await pending).toBe('dropped');
  });

  it('counts nothing for a client that leaves during the latency wait', async () => {
    const { sim, client } = await start({ latencyMs: 5_000 }, { timeout: 100 });
    await expect(client.chat.completions.create({ model: 'gpt-4o-mini', messages })).rejects.toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
    await sleep(50);
    expect(sim.stats()).toMatchObject({ requests: 1, completions: 0, errors: 0, timeouts: 0, totalTokens: 0 });
  });

  it('counts nothing for a stream the client abandons midway', async () => {
    const { sim, client } = await start({ tokenLatencyMs: 50 });
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, stream: true, max_tokens: 30 });
    let seen = 0;
    for await (const _ of stream) {
      if (++seen === 2) break; // leaving the loop aborts the request
    }
    // Long enough for the unabandoned stream (~14 frames × 50 ms) to have finished.
    await sleep(1_000);
    expect(sim.stats()).toMatchObject({ requests: 1, completions: 0, completionTokens: 0, totalTokens: 0 });

    // Control: the same stream read to the end is counted.
    for await (const _ of await client.chat.completions.create({ model: 'gpt-4o-mini', messages, stream: true, max_tokens: 30 })) seen++;
    expect(sim.stats().completions).toBe(1);
  });
});

describe('accounting', () => {
  it('is exact after a mix of successes, failures, throttles and timeouts', async () => {
    // The client timeout must exceed any honest answer time even on a loaded machine.
    const { sim, client, admin } = await start({ errorRate: 0.4 }, { timeout: 1_000 });
    const expected: SimStats = {
      requests: 0,
      completions: 0,
      promptTokens: 0,
      completionTokens: 0,
      totalTokens: 0,
      embeddings: 0,
      embeddingTokens: 0,
      errors: 0,
      throttled: 0,
      timeouts: 0,
      replays: 0,
      responses: 0,
      aborted: 0,
      abortedTokens: 0,
      batchLines: 0,
    };
    const ask = async (content: string, stream: boolean): Promise<void> => {
      expected.requests++;
      const msgs = [{ role: 'user' as const, content }];
      try {
        if (stream) {
          let usage: OpenAI.CompletionUsage | undefined;
          for await (const c of await client.chat.completions.create({
            model: 'gpt-4o',
            messages: msgs,
            stream: true,
            stream_options: { include_usage: true },
          })) {
            usage = c.usage ?? usage;
          }
          expected.completions++;
          expected.promptTokens += usage?.prompt_tokens ?? NaN;
          expected.completionTokens += usage?.completion_tokens ?? NaN;
          expected.totalTokens += usage?.total_tokens ?? NaN;
        } else {
          const r = await client.chat.completions.create({ model: 'gpt-4o', messages: msgs, max_tokens: 20 });
          expect(r.usage?.prompt_tokens).toBe(countPromptTokens(msgs));
          expected.completions++;
          expected.promptTokens += r.usage?.prompt_tokens ?? NaN;
          expected.completionTokens += r.usage?.completion_tokens ?? NaN;
          expected.totalTokens += r.usage?.total_tokens ?? NaN;
        }
      } catch (e) {
        if (e instanceof OpenAI.RateLimitError) expected.throttled++;
        else if (e instanceof OpenAI.APIConnectionTimeoutError) expected.timeouts++;
        else if (e instanceof OpenAI.APIError && e.status !== undefined) expected.errors++;
        else throw e;
      }
    };

    for (let i = 0; i < 30; i++) await ask(`question number ${i} about ${'x'.repeat(i)}`, i % 3 === 0);
    await post(`${admin}/faults`, { errorRate: 0.2, timeoutRate: 0.3, requestsPerMinute: 14 });
    for (let i = 0; i < 20; i++) await ask(`second round ${i}`, i % 2 === 0);

    expected.requests++;
    const emb = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['one two', 'three'] }).catch((e: unknown) => e);
    if (emb instanceof OpenAI.RateLimitError) expected.throttled++;
    else {
      expected.embeddings++;
      expected.embeddingTokens += (emb as OpenAI.CreateEmbeddingResponse).usage.prompt_tokens;
    }
    expected.requests++;
    expected.errors++;
    await client.chat.completions.create({ model: 'nope', messages }).catch(() => undefined);

    // The seeded fault sequence makes this mix deterministic; make sure every outcome occurred.
    expect(expected.completions).toBeGreaterThan(0);
    expect(expected.errors).toBeGreaterThan(1);
    expect(expected.throttled).toBeGreaterThan(0);
    expect(expected.timeouts).toBeGreaterThan(0);
    expect(sim.stats()).toEqual(expected);
    expect(await (await fetch(`${admin}/stats`)).json()).toEqual(expected);

    const reset = await post(`${admin}/reset`);
    expect(((await reset.json()) as SimStats).requests).toBe(0);
    expect(sim.stats()).toEqual({ ...expected, ...Object.fromEntries(Object.keys(expected).map((k) => [k, 0])) });
  });
});
