import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { startSim, type Sim } from '@sluice/openai-sim';
import { eventually } from '@sluice/bus/testing';
import { hashKey } from '@sluice/contracts';
import { defaultConfig, startE2eStack, type E2eStack } from './harness.js';

// Issue 12, item 1: the semantic cache through the real stack with the shipped config (the dev
// tenant opted in), the simulator's embeddings (hashed word and character n-grams: a test
// stand-in) reached through Sluice's own deployment of text-embedding-3-small. A paraphrase is
// answered from the first question's answer; "turn off" is never answered with "turn on"'s;
// another tenant never sees dev's entries; a restarted cache replica rebuilds its index.

const OTHER_KEY = 'sk-e2e-semantic-other';
const SYSTEM = { role: 'system' as const, content: 'You are the settings assistant of Acme Notes.' };

let sim: Sim;
let stack: E2eStack;
beforeAll(async () => {
  sim = await startSim({ port: 0 });
  const config = defaultConfig();
  config.tenants = [...config.tenants, { id: 'other', keySha256: [hashKey(OTHER_KEY)], cache: { semantic: { enabled: true } } }];
  stack = await startE2eStack({ config, upstreamUrl: sim.url, replicas: { cache: 2 } });
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});

async function ask(question: string, client: OpenAI = stack.openai()) {
  const { data, response } = await client.chat.completions
    .create({ model: 'gpt-4o-mini', messages: [SYSTEM, { role: 'user', content: question }] })
    .withResponse();
  return { content: data.choices[0]!.message.content, cache: response.headers.get('x-sluice-cache'), requestId: response.headers.get('x-request-id')! };
}

/** Asks until the answer comes from the cache kind wanted (the entry reaches every replica's index through the bucket). */
async function askUntil(question: string, kind: string) {
  let last: Awaited<ReturnType<typeof ask>> | undefined;
  await eventually(async () => {
    last = await ask(question);
    expect(last.cache).toBe(kind);
  }, 10_000);
  return last!;
}

describe('the semantic cache (dev tenant, shipped config)', () => {
  let first: Awaited<ReturnType<typeof ask>>;

  it('answers a paraphrase from the first question’s answer, with no second chat call, and says so', async () => {
    first = await ask('How do I enable dark mode in the app?');
    expect(first.cache).toBe('miss');
    const chats = sim.stats().completions;
    const embeddings = sim.stats().embeddings;
    expect(embeddings).toBeGreaterThan(0);
    const again = await askUntil('how can i enable the dark mode in the app', 'semantic');
    expect(again.content).toBe(first.content);
    expect(again.requestId).not.toBe(first.requestId);
    expect(sim.stats().completions).toBe(chats);
    // each lookup paid for its embedding, through Sluice's deployment
    expect(sim.stats().embeddings).toBeGreaterThan(embeddings);

    await stack.ledgerCaughtUp();
    const report = await stack.ledger(`/v1/requests/${again.requestId}`);
    const hit = report.timeline.find((e: { type: string }) => e.type === 'cache.hit');
    expect(hit.data).toMatchObject({ kind: 'semantic', matchedRequestId: first.requestId, similarity: expect.any(Number) });
    expect(hit.data.similarity).toBeGreaterThanOrEqual(0.5);
    expect(hit.reason).toContain(`to request ${first.requestId}`);
  });

  it('never answers "disable" or "can\'t" with "enable"’s answer: a miss, a new upstream call, and on the timeline why', async () => {
    const chats = sim.stats().completions;
    const off = await ask('How do I disable dark mode in the app?');
    const cannot = await ask("Why can't I enable dark mode in the app?");
    expect([off.cache, cannot.cache]).toEqual(['miss', 'miss']);
    expect(sim.stats().completions).toBe(chats + 2);
    await stack.ledgerCaughtUp();
    const semanticOf = async (requestId: string) => {
      const report = await stack.ledger(`/v1/requests/${requestId}`);
      return report.timeline.find((e: { type: string }) => e.type === 'cache.missed').data.semantic;
    };
    // "disable" shares less with "enable" than the threshold asks; "can't" shares almost everything, and the guard refuses it
    expect(await semanticOf(off.requestId)).toMatchObject({ matchedRequestId: first.requestId, similarity: expect.any(Number) });
    const vetoed = await semanticOf(cannot.requestId);
    expect(vetoed.similarity).toBeGreaterThanOrEqual(vetoed.threshold);
    expect(vetoed).toMatchObject({ matchedRequestId: first.requestId, vetoed: expect.stringMatching(/negation/i) });
  });

  it("keeps tenants apart: another tenant's identical question is not answered from dev's entries", async () => {
    const other = new OpenAI({ baseURL: `${stack.ingressUrl}/v1`, apiKey: OTHER_KEY, maxRetries: 0 });
    const chats = sim.stats().completions;
    const theirs = await ask('how can i enable the dark mode in the app', other);
    expect(theirs.cache).toBe('miss');
    expect(sim.stats().completions).toBe(chats + 1);
  });

  it('a cache replica killed and restarted rebuilds its index from the bucket and still finds the entry', async () => {
    const replicas = stack.replicas.get('cache')!;
    for (const r of replicas) r.kill('SIGKILL');
    // the supervisor restarts them; the first lookups wait in the stream until one is back
    const after = await askUntil('How can I enable dark mode in the app please?', 'semantic');
    expect(after.content).toBe(first.content);
  });
});
