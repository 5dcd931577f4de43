import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { SluiceClient, SluiceRequestError } from '@sluice/client';
import { startSim } from '@sluice/openai-sim';
import { eventually } from '@sluice/bus/testing';
import { contentOf } from '@sluice/contracts/testing';
import { DEV_KEY, startE2eStack, type E2eStack } from './harness.js';

// The whole stack as processes on real NATS and real Postgres, driven through both front doors.
let stack: E2eStack;
beforeAll(async () => {
  stack = await startE2eStack({ postgres: true });
});
afterAll(async () => {
  await stack?.close();
});

const ask = (content: string) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content }] });

describe('HTTP front door with the openai SDK', () => {
  it('answers a whole completion with the gateway headers', async () => {
    const { data, response } = await stack.openai().chat.completions.create(ask('What is a token bucket?')).withResponse();
    expect(data.object).toBe('chat.completion');
    expect(data.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(data.model).toBe('gpt-4o-mini');
    expect(data.usage?.total_tokens).toBe((data.usage?.prompt_tokens ?? 0) + (data.usage?.completion_tokens ?? 0));
    expect(response.headers.get('x-sluice-request-id')).toMatch(/^req_/);
    expect(response.headers.get('x-sluice-cache')).toBe('miss');
    expect(response.headers.get('x-sluice-model')).toBe('gpt-4o-mini');
  });

  it('gives the same answer the upstream gives, streamed chunk by chunk ending in [DONE]', async () => {
    // a second simulator, so the gateway's upstream counts only what the gateway asked for
    const reference = await startSim({ port: 0 });
    const direct = new OpenAI({ baseURL: reference.url, apiKey: 'x', maxRetries: 0 });
    const expected = await direct.chat.completions.create(ask('Stream me an answer about queues'));
    await reference.close();
    const stream = await stack
      .openai()
      .chat.completions.create({ ...ask('Stream me an answer about queues'), stream: true, stream_options: { include_usage: true } });
    let content = '';
    let chunks = 0;
    let usage: OpenAI.CompletionUsage | undefined;
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      chunks++;
      content += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(chunks).toBeGreaterThan(2);
    expect(content).toBe(expected.choices[0]?.message.content);
    expect(finish).toBe(expected.choices[0]?.finish_reason);
    expect(usage?.completion_tokens).toBe(expected.usage?.completion_tokens);
  });

  it('answers the second identical request from the cache, and bypasses it on request', async () => {
    const client = stack.openai();
    const first = await client.chat.completions.create(ask('Cache me if you can')).withResponse();
    const second = await client.chat.completions.create(ask('Cache me if you can')).withResponse();
    expect(first.response.headers.get('x-sluice-cache')).toBe('miss');
    expect(second.response.headers.get('x-sluice-cache')).toBe('hit');
    expect(second.data.choices[0]?.message.content).toBe(first.data.choices[0]?.message.content);
    const servedBefore = stack.sim!.stats().completions;
    const skipped = await client.chat.completions.create(ask('Cache me if you can'), { headers: { 'x-sluice-cache': 'skip' } }).withResponse();
    expect(skipped.response.headers.get('x-sluice-cache')).toBe('miss');
    expect(stack.sim!.stats().completions).toBe(servedBefore + 1);
  });

  it('lets the router choose a model for model "auto" and lists models', async () => {
    const res = await stack.openai().chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] });
    expect(stack.config.tiers.map((t) => t.model)).toContain(res.model);
    const models = await stack.openai().models.list();
    const ids = models.data.map((m) => m.id);
    expect(ids).toEqual(expect.arrayContaining(['auto', 'gpt-4o-mini', 'gpt-4o']));
  });
});

describe('a client whose connection dropped', () => {
  // issue 14: the request runs on and its answer is kept; the retry with the same Idempotency-Key
  // gets it, the upstream is called once, and the ledger's exact-billing test below covers it
  it('gets the answer by retrying with the same Idempotency-Key, and the upstream is called once', async () => {
    const sim = stack.sim!;
    const body = ask(`Keep this for my retry ${Date.now()}`);
    const key = `e2e-drop-${Date.now()}`;
    // chat requests the upstream got (the semantic cache's embedding calls are counted apart)
    const chats = () => sim.stats().requests - sim.stats().embeddings;
    const before = chats();
    sim.setFaults({ latencyMs: 1500 });
    try {
      const abort = new AbortController();
      const dropped = stack.openai().chat.completions.create(body, { headers: { 'Idempotency-Key': key }, signal: abort.signal });
      setTimeout(() => abort.abort(), 400);
      await expect(dropped).rejects.toThrow(/abort/i);

      const { data, response } = await stack
        .openai()
        .chat.completions.create(body, { headers: { 'Idempotency-Key': key } })
        .withResponse();
      expect(response.headers.get('idempotent-replayed')).toBe('true');
      expect(data.choices[0]?.message.content?.length).toBeGreaterThan(0);
      expect(chats() - before).toBe(1);
      const id = response.headers.get('x-request-id')!;

      // the same answer by its id, and on the ledger a completed request (not a cancelled one)
      const fetched = await fetch(`${stack.ingressUrl}/v1/sluice/requests/${id}/result`, { headers: { authorization: `Bearer ${DEV_KEY}` } });
      expect(((await fetched.json()) as OpenAI.ChatCompletion).choices[0]?.message.content).toBe(data.choices[0]?.message.content);
      const row = await eventually(async () => {
        const r = await stack.ledger(`/v1/requests/${id}`);
        if (r.outcome === 'pending' || !r.outcome) throw new Error('not yet');
        return r;
      }, 20_000);
      expect(row.outcome).toBe('completed');

      // another body under the same key is refused
      const reused = await stack
        .openai()
        .chat.completions.create(ask('something else'), { headers: { 'Idempotency-Key': key } })
        .catch((e: unknown) => e);
      expect(reused).toMatchObject({ status: 422, code: 'idempotency_key_reused' });
    } finally {
      sim.setFaults({ latencyMs: 0 });
    }
  });
});

describe('NATS front door with libs/client', () => {
  it('answers whole and streamed requests', async () => {
    const client = new SluiceClient(stack.nc, { tenant: 'dev', key: DEV_KEY });
    const whole = await client.chat({ messages: [{ role: 'user', content: 'Hello over NATS' }], model: 'gpt-4o-mini' });
    expect(whole.requestId).toMatch(/^req_/);
    expect(whole.cached).toBe(false);
    expect(whole.body).toMatchObject({ object: 'chat.completion', id: `chatcmpl-${whole.requestId}` });
    expect(contentOf(whole.body)!.length).toBeGreaterThan(0);
    expect(whole.usage.total_tokens).toBeGreaterThan(0);

    const stream = client.stream({ messages: [{ role: 'user', content: 'Stream over NATS please' }], model: 'gpt-4o-mini' });
    let content = '';
    let chunks = 0;
    for (;;) {
      const next = await stream.next();
      if (next.done) {
        expect(contentOf(next.value.body)).toBe(content);
        break;
      }
      chunks++;
      // the upstream's own chat.completion.chunk, passed through
      content += (next.value.chunk as OpenAI.ChatCompletionChunk).choices[0]?.delta.content ?? '';
    }
    expect(chunks).toBeGreaterThan(1);

    const again = await client.chat({ messages: [{ role: 'user', content: 'Hello over NATS' }], model: 'gpt-4o-mini' });
    expect(again.cached).toBe(true);
    expect(contentOf(again.body)).toBe(contentOf(whole.body));
  });

  it('refuses a wrong key with a coded error', async () => {
    const client = new SluiceClient(stack.nc, { tenant: 'dev', key: 'sk-wrong' });
    const err = await client.chat({ messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SluiceRequestError);
    expect((err as SluiceRequestError).code).toBe('invalid_api_key');
    expect((err as SluiceRequestError).status).toBe(401);
  });
});

describe('ledger', () => {
  it('records a request timeline in order, from ingress to the cache store', async () => {
    const { response } = await stack.openai().chat.completions.create(ask('Timeline please')).withResponse();
    const id = response.headers.get('x-sluice-request-id')!;
    const timeline = await eventually(async () => {
      const r = await stack.ledger(`/v1/requests/${id}`);
      if (!r.timeline.some((e: { type: string }) => e.type === 'cache.stored')) throw new Error('not yet');
      return r;
    }, 20_000);
    expect(timeline.outcome).toBe('completed');
    expect(timeline.timeline.map((e: { type: string }) => e.type)).toEqual([
      'chat.requested',
      'chat.admitted',
      'cache.missed',
      'chat.routed',
      'invoke.attempted',
      'chat.completed',
      'cache.stored',
    ]);
    expect(timeline.timeline.map((e: { service: string }) => e.service)).toEqual(['ingress', 'limiter', 'cache', 'router', 'invoker', 'invoker', 'cache']);
    for (const e of timeline.timeline) expect(typeof e.reason).toBe('string');
  });

  it('charges exactly the tokens the upstream served, at the configured prices', async () => {
    await stack.ledgerCaughtUp();
    const stats = stack.sim!.stats();
    const costs = await stack.ledger('/v1/costs?groupBy=model');
    const input = costs.rows.reduce((s: number, r: any) => s + r.inputTokens, 0);
    const output = costs.rows.reduce((s: number, r: any) => s + r.outputTokens, 0);
    expect(stats.completions).toBeGreaterThan(3);
    expect(input).toBe(stats.promptTokens);
    expect(output).toBe(stats.completionTokens);
    for (const row of costs.rows) {
      const price = stack.config.models[row.model]?.price;
      if (!price) continue;
      // costUsd includes what the semantic cache paid to embed the row's questions (the dev tenant opted in).
      // The API rounds each sum to 6 decimals apart, so their difference is within 2 × 0.5e-6 of the
      // exact one; the ledger's own rounding (each bill up to the nano-USD) adds at most 1e-9 a request.
      const chat = (row.inputTokens * price.inputPerMTok + row.outputTokens * price.outputPerMTok) / 1e6;
      expect(Math.abs(Number(row.costUsd) - Number(row.embeddingUsd) - chat)).toBeLessThanOrEqual(1e-6 + row.requests * 1e-9);
    }
    // every embedding token the simulator served was billed to the tenant (GET /v1/cache counts them exactly)
    const cache = await stack.ledger('/v1/cache?groupBy=tenant');
    expect(cache.totals.embeddingTokens).toBe(stats.embeddingTokens);
    expect(costs.rows.reduce((s: number, r: any) => s + r.cacheHits, 0)).toBeGreaterThanOrEqual(2);

    const slo = await stack.ledger('/v1/slo?window=1h&groupBy=model');
    const mini = slo.rows.find((r: any) => r.model === 'gpt-4o-mini');
    expect(mini.latencyMs.p50).toBeGreaterThan(0);
    expect(mini.latencyMs.p99).toBeGreaterThanOrEqual(mini.latencyMs.p50);
    expect(mini.errorRate).toBe(0);
    expect(mini.cacheHitRate).toBeGreaterThan(0);
  });
});
