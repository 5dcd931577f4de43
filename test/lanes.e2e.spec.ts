import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { invokerConsumer, Topology, type Priority } from '@sluice/contracts';
import { eventually } from '@sluice/bus/testing';
import { defaultConfig, startE2eStack, type E2eStack } from './harness.js';

// Priority lanes (issue 11, item 3; docs/lanes.md). The invoker has 4 upstream slots and the
// simulator takes 400 ms a call. 40 low and batch requests saturate it; a realtime request sent
// then waits at most for the next free slot, not behind the 30-odd already waiting, and low keeps
// its guaranteed slot while batch, a higher lane, has more work than the slots.
const SLOTS = 4;
const LATENCY_MS = 400;
let stack: E2eStack;

beforeAll(async () => {
  const config = defaultConfig();
  config.invoker = { ...config.invoker, concurrency: SLOTS };
  // the default shares (critical 0.1, realtime 0.3, standard 0.2, batch 0.3, low 0.1): of 4 slots,
  // low is guaranteed 0.4 (one slot while it has work), realtime 1.2
  stack = await startE2eStack({ config, sim: { latencyMs: LATENCY_MS } });
});
afterAll(async () => {
  await stack?.close();
});

interface Answered {
  lane: Priority;
  ok: boolean;
  /** ms from sending to the whole answer. */
  ms: number;
  /** x-sluice-queue-ms */
  queueMs: number | undefined;
  /** ms since the test's start when it was answered. */
  doneAt: number;
}

const t0 = performance.now();

async function ask(lane: Priority, n: number, extra: Record<string, string> = {}): Promise<Answered> {
  const started = performance.now();
  try {
    const { response } = await stack
      .openai()
      .chat.completions.create(
        { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `lanes ${lane} ${n} ${Math.random()}` }], max_tokens: 8 },
        { headers: { 'x-sluice-priority': lane, ...extra } },
      )
      .withResponse();
    const queue = response.headers.get('x-sluice-queue-ms');
    const done = performance.now();
    return { lane, ok: true, ms: done - started, queueMs: queue === null ? undefined : Number(queue), doneAt: done - t0 };
  } catch {
    const done = performance.now();
    return { lane, ok: false, ms: done - started, queueMs: undefined, doneAt: done - t0 };
  }
}

const pendingIn = async (lane: Priority): Promise<number> => {
  const jsm = await jetstreamManager(stack.nc);
  return (await jsm.consumers.info(Topology.stream.name, invokerConsumer(lane).durable)).num_pending;
};

describe('priority lanes under a saturated upstream', () => {
  it('answers a realtime request within about one upstream latency while 40 low and batch requests wait, and starves neither', async () => {
    // warm the path (tokenizer, connections) so the measured request pays no first-time costs
    expect((await ask('standard', 0)).ok).toBe(true);

    const background = Array.from({ length: 40 }, (_, i) => ask(i % 2 === 0 ? 'batch' : 'low', i));
    // saturated: every slot busy and requests waiting in both lanes' streams, not in the invoker
    await eventually(async () => {
      const [batch, low] = await Promise.all([pendingIn('batch'), pendingIn('low')]);
      if (batch < 5 || low < 5) throw new Error(`waiting in the stream: batch ${batch}, low ${low}`);
    }, 20_000);

    const realtime = await ask('realtime', 0);
    const rest = await Promise.all(background);

    const low = rest.filter((r) => r.lane === 'low');
    const batch = rest.filter((r) => r.lane === 'batch');
    const lastBatch = Math.max(...batch.map((r) => r.doneAt));
    const lowDuringBatch = low.filter((r) => r.doneAt < lastBatch).length;
    const waits = (rs: Answered[]) => rs.map((r) => r.queueMs ?? NaN).sort((a, b) => a - b);
    const lowWaits = waits(low);
    console.log(
      `lanes: realtime answered in ${realtime.ms.toFixed(0)} ms (x-sluice-queue-ms ${realtime.queueMs}) with ${SLOTS} slots of ${LATENCY_MS} ms saturated; ` +
        `low waited ${lowWaits[0]}..${lowWaits.at(-1)} ms (median ${lowWaits[10]}), batch ${waits(batch)[0]}..${waits(batch).at(-1)} ms; ` +
        `${lowDuringBatch} of 20 low answered before the last batch one`,
    );

    expect(realtime.ok).toBe(true);
    // one slot frees within one upstream latency; the call then takes one more
    expect(realtime.queueMs).toBeLessThan(LATENCY_MS * 1.5);
    expect(realtime.ms).toBeLessThan(LATENCY_MS * 3);
    // no lane starves: every request is answered, each with its lane wait
    expect(rest.every((r) => r.ok)).toBe(true);
    expect([...lowWaits, ...waits(batch)].every((w) => Number.isFinite(w) && w >= 0)).toBe(true);
    // low kept its guaranteed slot while batch (above it) had more work than the slots: about one
    // low answer every 400 ms of batch's ~2.7 s, where a strict priority order would give none
    expect(lowDuringBatch).toBeGreaterThanOrEqual(3);
    // the low lane waited longer than the realtime request: its waits are real queueing
    expect(lowWaits.at(-1)!).toBeGreaterThan(realtime.queueMs!);
  }, 60_000);

  it('shows each lane on its own consumer and leaves nothing unacked', async () => {
    await stack.consumersDrained();
    const jsm = await jetstreamManager(stack.nc);
    const names: string[] = [];
    for await (const c of jsm.consumers.list(Topology.stream.name)) names.push(c.name);
    expect(names).toEqual(expect.arrayContaining(['invoker-critical', 'invoker-realtime', 'invoker-standard', 'invoker-batch', 'invoker-low']));
    // the single durable from before lanes is gone
    expect(names).not.toContain('invoker');
  });
});
