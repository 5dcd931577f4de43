import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type OpenAI from 'openai';
import { SluiceClient } from '@sluice/client';
import { contentOf } from '@sluice/contracts/testing';
import { DEV_KEY, startE2eStack, type E2eStack } from './harness.js';

// Coalescing across replicas: two cache processes share the lookup durable, so the 50 requests
// below are split between them and only the inflight bucket can make them agree on one leader.
let stack: E2eStack;
beforeAll(async () => {
  stack = await startE2eStack({ postgres: true, replicas: { cache: 2 } });
});
afterAll(async () => {
  await stack?.close();
});

/** How one client saw its answer: its request id, how the cache served it, the content. */
interface Seen {
  door: 'http' | 'http-stream' | 'nats' | 'nats-stream';
  requestId: string;
  cache: string;
  content: string;
}

const N = 50;

describe('coalescing', () => {
  it('makes one upstream call for 50 identical concurrent requests through both doors, streamed and whole', async () => {
    const sim = stack.sim!;
    const question = `What will the launch-day keynote announce? ${Date.now()}`;
    const messages = [{ role: 'user' as const, content: question }];
    const before = sim.stats().completions;
    // the upstream's answer takes long enough for every request to arrive while it is being made
    sim.setFaults({ latencyMs: 800 });
    try {
      const openai = stack.openai();
      const nats = new SluiceClient(stack.nc, { tenant: 'dev', key: DEV_KEY, timeoutMs: 30_000 });
      const viaHttp = async (): Promise<Seen> => {
        const { data, response } = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages }).withResponse();
        return {
          door: 'http',
          requestId: response.headers.get('x-sluice-request-id')!,
          cache: response.headers.get('x-sluice-cache')!,
          content: data.choices[0]!.message.content!,
        };
      };
      const viaHttpStream = async (): Promise<Seen> => {
        const { data, response } = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages, stream: true }).withResponse();
        let content = '';
        for await (const chunk of data) content += chunk.choices[0]?.delta.content ?? '';
        return { door: 'http-stream', requestId: response.headers.get('x-sluice-request-id')!, cache: response.headers.get('x-sluice-cache')!, content };
      };
      const viaNats = async (): Promise<Seen> => {
        const r = await nats.chat({ model: 'gpt-4o-mini', messages });
        return { door: 'nats', requestId: r.requestId, cache: r.cache, content: contentOf(r.body)! };
      };
      const viaNatsStream = async (): Promise<Seen> => {
        const it = nats.stream({ model: 'gpt-4o-mini', messages });
        let content = '';
        for (;;) {
          const next = await it.next();
          if (next.done) {
            expect(contentOf(next.value.body)).toBe(content);
            return { door: 'nats-stream', requestId: next.value.requestId, cache: next.value.cache, content };
          }
          content += (next.value.chunk as OpenAI.ChatCompletionChunk).choices[0]?.delta.content ?? '';
        }
      };
      const doors = [viaHttp, viaHttpStream, viaNats, viaNatsStream];
      const started = performance.now();
      const seen = await Promise.all(Array.from({ length: N }, (_, i) => doors[i % doors.length]!()));
      console.log(`coalescing e2e: ${N} identical requests answered in ${(performance.now() - started).toFixed(0)} ms with the upstream taking 800 ms`);

      // one upstream call, one leader; everyone else was answered from it
      expect(sim.stats().completions - before).toBe(1);
      const leaders = seen.filter((s) => s.cache === 'miss');
      expect(leaders).toHaveLength(1);
      expect(seen.filter((s) => s.cache === 'coalesced')).toHaveLength(N - 1);
      // the same answer for all, each under its own request id
      expect(new Set(seen.map((s) => s.content)).size).toBe(1);
      expect(seen[0]!.content.length).toBeGreaterThan(0);
      expect(new Set(seen.map((s) => s.requestId)).size).toBe(N);
      expect(seen.every((s) => /^req_/.test(s.requestId))).toBe(true);

      // a follower's timeline says whose answer it got, and the leader's says it led
      const leader = leaders[0]!;
      const follower = seen.find((s) => s.cache === 'coalesced' && s.door === 'http')!;
      await stack.ledgerCaughtUp();
      type Timeline = { timeline: Array<{ type: string; reason: string; data: Record<string, unknown> }> };
      const followed = await stack.ledger<Timeline>(`/v1/requests/${follower.requestId}`);
      const coalesced = followed.timeline.find((e) => e.type === 'cache.coalesced');
      expect(coalesced?.data).toMatchObject({ leaderRequestId: leader.requestId });
      expect(followed.timeline.map((e) => e.type)).not.toContain('chat.routed');
      const led = await stack.ledger<Timeline>(`/v1/requests/${leader.requestId}`);
      expect(led.timeline.find((e) => e.type === 'cache.missed')?.data).toMatchObject({ leads: true });
    } finally {
      sim.setFaults({ latencyMs: 0 });
    }
  });
});
