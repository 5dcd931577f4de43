import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { invokerConsumer, Topology } from '@sluice/contracts';
import { requested, routed } from '@sluice/contracts/testing';
import { NOTHING } from './decided.js';
import { publishEvent } from './publish.js';
import { pullEvents, type Pulled } from './pulled.js';
import { eventually, minimalConfig, startTestBus, type TestBus } from './testing.js';

// pullEvents against a real nats-server: nothing leaves the stream until the caller pulls, a
// message put back is redelivered, and stop() hands back what was held.
let env: TestBus;
beforeAll(async () => {
  env = await startTestBus(minimalConfig([{ id: 'acme' }]), { name: 'pulled' });
});
afterAll(async () => {
  await env?.stop();
});

const publishRouted = async (n: number, lane: 'batch' | 'low') => {
  for (let i = 0; i < n; i++) {
    const id = `${lane}-${i}`;
    await publishEvent(env.bus.js, routed(id, 'acme', { ctx: requested(id, 'acme').data.ctx, lane }));
  }
};
const info = (durable: string) => env.bus.jsm.consumers.info(Topology.stream.name, durable);

describe('pullEvents', () => {
  it('takes only what the caller pulls, runs it under the delivery rule, and leaves the rest in the stream', async () => {
    const handled: string[] = [];
    const batch = await pullEvents(env.bus, {
      consumer: invokerConsumer('batch'),
      maxAckPending: 100,
      log: env.log,
      handler: async (event) => {
        handled.push(event.requestId);
        return NOTHING;
      },
    });
    await publishRouted(5, 'batch');
    // a low request is another lane's: never delivered here
    await publishRouted(1, 'low');
    const got: Pulled[] = [];
    await batch.pull(2, (m) => got.push(m));
    expect(got.map((m) => m.seq)).toEqual([1, 2]);
    // the server said how many were behind each one
    expect(got.map((m) => m.pending)).toEqual([4, 3]);
    expect((await info('invoker-batch')).num_pending).toBe(3);
    expect(handled).toEqual([]);

    await Promise.all(got.map((m) => m.run()));
    expect(handled).toEqual(['batch-0', 'batch-1']);
    await eventually(async () => expect((await info('invoker-batch')).num_ack_pending).toBe(0));
    expect(() => got[0]!.run()).toThrow(/already run or put back/);
    await batch.stop();
  });

  it('redelivers a message put back, and puts back what it holds when it stops', async () => {
    const handled: Array<[string, number]> = [];
    const opts = {
      consumer: invokerConsumer('batch'),
      maxAckPending: 100,
      log: env.log,
      handler: async (event: { requestId: string }, delivery: { deliveryCount: number }) => {
        handled.push([event.requestId, delivery.deliveryCount]);
        return NOTHING;
      },
    };
    const first = await pullEvents(env.bus, opts);
    let held: Pulled | undefined;
    await first.pull(1, (m) => (held = m));
    held!.putBack();
    // back in the stream once the server has processed the nak (acks are handled apart from
    // pulls, so a pull sent right after may get a newer message first)
    const others: Pulled[] = [];
    let back: Pulled | undefined;
    for (let i = 0; i < 3 && !back; i++) await first.pull(1, (m) => (m.seq === held!.seq ? (back = m) : others.push(m)));
    expect(back).toBeDefined();
    // held, not run, when this replica stops: back to the stream for another
    await first.stop();

    const second = await pullEvents(env.bus, opts);
    const runs: Array<Promise<void>> = [];
    for (let i = 0; i < 5 && runs.length < 3; i++) await second.pull(3 - runs.length, (m) => runs.push(m.run()));
    await Promise.all(runs);
    expect(handled.map(([id]) => id).sort()).toEqual(['batch-2', 'batch-3', 'batch-4']);
    // taken three times: held and put back, taken again and handed back at stop, then run
    expect(handled.find(([id]) => id === 'batch-2')![1]).toBe(3);
    await eventually(async () => {
      const i = await info('invoker-batch');
      expect([i.num_pending, i.num_ack_pending]).toEqual([0, 0]);
    });
    await second.stop();
  });
});
