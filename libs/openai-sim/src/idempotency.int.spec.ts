import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Sim, startSim } from './mod.js';

let sim: Sim;
let client: OpenAI;

beforeAll(async () => {
  sim = await startSim({ port: 0 });
  client = new OpenAI({ baseURL: sim.url, apiKey: 'x', maxRetries: 0 });
});
afterAll(() => sim.close());
beforeEach(() => {
  sim.reset();
  sim.setFaults({ errorRate: 0, latencyMs: 0, requestsPerMinute: null, tokensPerMinute: null });
});

const messages = [{ role: 'user' as const, content: 'Say something twice.' }];
const keyed = (key: string) => ({ headers: { 'Idempotency-Key': key } });

describe('Idempotency-Key on chat completions', () => {
  it('replays a served answer without serving or counting it again', async () => {
    const first = await client.chat.completions.create({ model: 'gpt-4o-mini', messages }, keyed('k-1')).withResponse();
    const again = await client.chat.completions.create({ model: 'gpt-4o-mini', messages }, keyed('k-1')).withResponse();
    expect(again.data).toEqual(first.data);
    expect(again.response.headers.get('idempotent-replayed')).toBe('true');
    expect(first.response.headers.get('idempotent-replayed')).toBeNull();
    expect(again.response.headers.get('x-request-id')).toBe(first.response.headers.get('x-request-id'));
    expect(sim.stats()).toMatchObject({ requests: 2, completions: 1, replays: 1, promptTokens: first.data.usage?.prompt_tokens });
  });

  it('serves a different key, or no key, afresh', async () => {
    const a = await client.chat.completions.create({ model: 'gpt-4o-mini', messages }, keyed('k-a'));
    const b = await client.chat.completions.create({ model: 'gpt-4o-mini', messages }, keyed('k-b'));
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages });
    expect(b.id).not.toBe(a.id);
    expect(sim.stats()).toMatchObject({ completions: 3, replays: 0 });
  });

  it('replays a streamed answer chunk for chunk', async () => {
    const read = async () => {
      const stream = await client.chat.completions.create(
        { model: 'gpt-4o-mini', messages, stream: true, stream_options: { include_usage: true } },
        keyed('k-stream'),
      );
      const chunks: unknown[] = [];
      for await (const c of stream) chunks.push(c);
      return chunks;
    };
    const first = await read();
    const again = await read();
    expect(again).toEqual(first);
    expect(sim.stats()).toMatchObject({ completions: 1, replays: 1 });
  });

  it('does not keep failures: the retry after a 500 is served and counted', async () => {
    sim.setFaults({ errorRate: 1 });
    await expect(client.chat.completions.create({ model: 'gpt-4o-mini', messages }, keyed('k-retry'))).rejects.toMatchObject({ status: 500 });
    sim.setFaults({ errorRate: 0 });
    const r = await client.chat.completions.create({ model: 'gpt-4o-mini', messages }, keyed('k-retry'));
    expect(r.usage?.total_tokens).toBeGreaterThan(0);
    expect(sim.stats()).toMatchObject({ completions: 1, replays: 0, errors: 1 });
  });

  it('does not charge the rate limit for a replay', async () => {
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages }, keyed('k-limit'));
    sim.setFaults({ requestsPerMinute: 1 });
    sim.reset(); // refills the bucket to exactly one request, and forgets the key
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages }, keyed('k-limit'));
    const replayed = await client.chat.completions.create({ model: 'gpt-4o-mini', messages }, keyed('k-limit')).withResponse();
    expect(replayed.response.headers.get('idempotent-replayed')).toBe('true');
    await expect(client.chat.completions.create({ model: 'gpt-4o-mini', messages }, keyed('k-other'))).rejects.toMatchObject({ status: 429 });
  });

  it('makes a repeat that arrives while the first is in flight wait for it, then replays', async () => {
    sim.setFaults({ latencyMs: 150 });
    const [a, b] = await Promise.all([
      client.chat.completions.create({ model: 'gpt-4o-mini', messages }, keyed('k-race')),
      client.chat.completions.create({ model: 'gpt-4o-mini', messages }, keyed('k-race')),
    ]);
    expect(b).toEqual(a);
    expect(sim.stats()).toMatchObject({ completions: 1, replays: 1 });
  });

  it('refuses the same key with a different body (422), and a key that is too long (400)', async () => {
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages }, keyed('k-body'));
    await expect(client.chat.completions.create({ model: 'gpt-4o', messages }, keyed('k-body'))).rejects.toMatchObject({
      status: 422,
      code: 'idempotency_key_reused',
    });
    await expect(client.chat.completions.create({ model: 'gpt-4o-mini', messages }, keyed('k'.repeat(256)))).rejects.toMatchObject({
      status: 400,
      code: 'invalid_idempotency_key',
    });
    expect(sim.stats()).toMatchObject({ completions: 1, errors: 2 });
  });
});
