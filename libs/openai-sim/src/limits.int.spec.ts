import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { type Sim, startSim } from './mod.js';
import { countPromptTokens } from './tokens.js';

const messages = [{ role: 'user' as const, content: 'Count my tokens, please.' }];
let sim: Sim | undefined;

async function start(opts: Parameters<typeof startSim>[0]): Promise<{ sim: Sim; client: OpenAI; admin: string }> {
  sim = await startSim(opts);
  return { sim, client: new OpenAI({ baseURL: sim.url, apiKey: 'x', maxRetries: 0 }), admin: sim.url.replace(/\/v1$/, '/admin') };
}
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

describe('rate limits', () => {
  it('answers 429 with retry-after once the request budget is spent', async () => {
    const { sim, client } = await start({ requestsPerMinute: 2 });
    const first = await client.chat.completions.create({ model: 'gpt-4o-mini', messages }).withResponse();
    expect(first.response.headers.get('x-ratelimit-limit-requests')).toBe('2');
    expect(first.response.headers.get('x-ratelimit-remaining-requests')).toBe('1');
    expect(first.response.headers.get('x-ratelimit-reset-requests')).toMatch(/^\d+(\.\d+)?(ms|s)$/);
    expect(first.response.headers.get('x-ratelimit-limit-tokens')).toBeNull();
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages });

    const err = await client.chat.completions.create({ model: 'gpt-4o-mini', messages }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const e = err as InstanceType<typeof OpenAI.RateLimitError>;
    expect(e.status).toBe(429);
    expect(e.type).toBe('requests');
    expect(e.code).toBe('rate_limit_exceeded');
    const retryAfter = Number(e.headers.get('retry-after'));
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(Number(e.headers.get('retry-after-ms'))).toBeGreaterThan(0);
    expect(e.headers.get('x-ratelimit-remaining-requests')).toBe('0');

    expect(sim.stats()).toMatchObject({ requests: 3, completions: 2, throttled: 1, errors: 0 });
  });

  it('charges prompt + completion tokens against the token budget', async () => {
    const budget = countPromptTokens(messages) + 30;
    const { sim, client } = await start({ tokensPerMinute: budget });
    const ok = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 30 }).withResponse();
    const used = ok.data.usage?.total_tokens ?? 0;
    expect(ok.response.headers.get('x-ratelimit-limit-tokens')).toBe(String(budget));
    expect(Number(ok.response.headers.get('x-ratelimit-remaining-tokens'))).toBe(budget - used);

    const err = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 30 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err).toMatchObject({ type: 'tokens', code: 'rate_limit_exceeded' });
    expect(sim.stats()).toMatchObject({ completions: 1, throttled: 1, totalTokens: used });
  });

  it('rejects a request larger than the whole token budget as too large', async () => {
    const { client } = await start({ tokensPerMinute: 10 });
    const err = await client.chat.completions.create({ model: 'gpt-4o-mini', messages }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect((err as Error).message).toContain('Request too large');
  });

  it('also limits embeddings', async () => {
    const { sim, client } = await start({ requestsPerMinute: 1 });
    await client.embeddings.create({ model: 'text-embedding-3-small', input: 'a' });
    await expect(client.embeddings.create({ model: 'text-embedding-3-small', input: 'a' })).rejects.toBeInstanceOf(OpenAI.RateLimitError);
    expect(sim.stats()).toMatchObject({ embeddings: 1, throttled: 1 });
  });

  it('sets and clears limits at run time over /admin/faults, and reset refills', async () => {
    const { sim, client, admin } = await start({});
    const set = await fetch(`${admin}/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ requestsPerMinute: 1 }),
    });
    expect(await set.json()).toMatchObject({ requestsPerMinute: 1, tokensPerMinute: null });
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages });
    await expect(client.chat.completions.create({ model: 'gpt-4o-mini', messages })).rejects.toBeInstanceOf(OpenAI.RateLimitError);

    sim.reset();
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages });
    await expect(client.chat.completions.create({ model: 'gpt-4o-mini', messages })).rejects.toBeInstanceOf(OpenAI.RateLimitError);

    const cleared = await fetch(`${admin}/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ requestsPerMinute: null }),
    });
    expect(await cleared.json()).toMatchObject({ requestsPerMinute: null });
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages });
    expect(sim.stats()).toMatchObject({ completions: 2, throttled: 1 });
  });
});
