import { setTimeout as sleep } from 'node:timers/promises';
import { encode } from 'gpt-tokenizer';
import { afterEach, describe, expect, it } from 'vitest';
import { type Sim, type SimStats, startSim } from './mod.js';

const TOKEN_LATENCY_MS = 150;
const prompt = 'Tell me a long story about rivers and stones and light';
let sims: Sim[] = [];

async function start(opts: Parameters<typeof startSim>[0]): Promise<Sim> {
  const sim = await startSim(opts);
  sims.push(sim);
  return sim;
}
afterEach(async () => {
  await Promise.all(sims.map((s) => s.close()));
  sims = [];
});

const post = (sim: Sim, path: string, body: object, signal?: AbortSignal): Promise<Response> =>
  fetch(`${sim.url}${path}`, { method: 'POST', body: JSON.stringify(body), signal });

/** Reads SSE text until `enough` says so, then aborts; returns what was read. */
async function readThenAbort(res: Response, ac: AbortController, enough: (text: string) => boolean): Promise<string> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (!enough(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error('the stream ended before the test aborted it');
    text += decoder.decode(value, { stream: true });
  }
  ac.abort();
  return text;
}

async function until(sim: Sim, ok: (s: SimStats) => boolean, ms: number): Promise<SimStats> {
  const deadline = Date.now() + ms;
  while (!ok(sim.stats()) && Date.now() < deadline) await sleep(5);
  return sim.stats();
}

/** The chat content the SSE text carried so far. */
function chatContent(sse: string): string {
  let content = '';
  for (const line of sse.split('\n')) {
    if (!line.startsWith('data: {')) continue;
    const chunk = JSON.parse(line.slice(6)) as { choices: { delta: { content?: string } }[] };
    content += chunk.choices[0]?.delta.content ?? '';
  }
  return content;
}

describe('client aborts', () => {
  it('counts a chat stream cut by the client, with the tokens it never sent, and stops writing at once', async () => {
    const sim = await start({ tokenLatencyMs: TOKEN_LATENCY_MS });
    const messages = [{ role: 'user', content: prompt }];
    const whole = (await (await post(sim, '/chat/completions', { model: 'gpt-4o-mini', messages })).json()) as { usage: { completion_tokens: number } };
    const total = whole.usage.completion_tokens;
    expect(total).toBeGreaterThan(20);
    sim.reset();

    const ac = new AbortController();
    const res = await post(sim, '/chat/completions', { model: 'gpt-4o-mini', messages, stream: true }, ac.signal);
    const read = await readThenAbort(res, ac, (t) => encode(chatContent(t)).length >= 6);
    const abortedAt = Date.now();
    const stats = await until(sim, (s) => s.aborted > 0, 5_000);
    const received = encode(chatContent(read)).length;
    // Writing the rest (content chunks of ~3 tokens, finish, [DONE]) would take this long; the sim stopped well before.
    const restMs = (Math.ceil((total - received) / 3) + 2) * TOKEN_LATENCY_MS;
    expect(Date.now() - abortedAt).toBeLessThan(restMs / 2);
    expect(stats).toMatchObject({ requests: 1, aborted: 1, completions: 0, completionTokens: 0, totalTokens: 0 });
    // At most one more frame (≤ 2 chunks of tokens) may have left before the close was seen.
    expect(stats.abortedTokens).toBeLessThanOrEqual(total - received);
    expect(stats.abortedTokens).toBeGreaterThanOrEqual(total - received - 6);

    // Nothing more happens for that request once it is cut.
    await sleep(TOKEN_LATENCY_MS * 5);
    expect(sim.stats()).toEqual(stats);
  });

  it('counts a Responses stream cut by the client the same way', async () => {
    const sim = await start({ tokenLatencyMs: TOKEN_LATENCY_MS });
    const ac = new AbortController();
    const res = await post(sim, '/responses', { model: 'gpt-4o-mini', input: prompt, stream: true }, ac.signal);
    await readThenAbort(res, ac, (t) => t.split('event: response.output_text.delta').length > 2);
    const stats = await until(sim, (s) => s.aborted > 0, 5_000);
    expect(stats).toMatchObject({ requests: 1, aborted: 1, completions: 0, responses: 0 });
    expect(stats.abortedTokens).toBeGreaterThan(0);
  });

  it('counts a stream whose client leaves during the first-byte wait as aborted with every token unsent', async () => {
    const sim = await start({ latencyMs: 5_000 });
    const messages = [{ role: 'user', content: prompt }];
    const ac = new AbortController();
    const pending = post(sim, '/chat/completions', { model: 'gpt-4o-mini', messages, stream: true }, ac.signal).catch((e: unknown) => e);
    await sleep(100);
    ac.abort();
    await pending;
    const stats = await until(sim, (s) => s.aborted > 0, 5_000);
    sim.setFaults({ latencyMs: 0 });
    const whole = (await (await post(sim, '/chat/completions', { model: 'gpt-4o-mini', messages })).json()) as { usage: { completion_tokens: number } };
    expect(stats).toMatchObject({ aborted: 1, abortedTokens: whole.usage.completion_tokens, completions: 0 });
  });

  it('counts nothing as aborted when the stream is read to its end or the answer is whole', async () => {
    const sim = await start({ tokenLatencyMs: 5 });
    await (await post(sim, '/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }], stream: true })).text();
    await (await post(sim, '/responses', { model: 'gpt-4o-mini', input: prompt, stream: true })).text();
    await (await post(sim, '/responses', { model: 'gpt-4o-mini', input: prompt })).json();
    expect(sim.stats()).toMatchObject({ completions: 3, responses: 2, aborted: 0, abortedTokens: 0 });
  });
});
