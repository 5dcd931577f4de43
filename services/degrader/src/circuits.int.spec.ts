import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Subscription } from '@nats-io/transport-node';
import { encodeJson, getJson } from '@sluice/bus';
import { eventuallyFound, startTestBus, type TestBus } from '@sluice/bus/testing';
import { ControlKeys, Subjects, type DegradeState, type SluiceEvent } from '@sluice/contracts';
import { testConfig } from './fixtures.js';
import { startReplica, type Replica } from './replica.js';

// the records' shape is the invoker's (services/invoker circuit store); the degrader reads state and openedAt
const config = testConfig({ windowMs: 2000, minSamples: 5, minHoldMs: 200, leaseMs: 900 });
let testBus: TestBus;
let replica: Replica;
let sub: Subscription;
const changes: Array<SluiceEvent<'degrade.changed'>> = [];

beforeAll(async () => {
  testBus = await startTestBus(config, { name: 'degrader-circuits' });
  sub = testBus.bus.nc.subscribe(Subjects.eventsOf('degrade.changed'), { callback: (_, m) => void changes.push(m.json()) });
  replica = await startReplica(testBus, 50);
});
afterAll(async () => {
  for (const c of [...(replica?.closers ?? [])].reverse()) await (typeof c === 'function' ? c() : c.stop());
  sub?.unsubscribe();
  await testBus?.stop();
});

const level = async () => (await getJson<DegradeState>(testBus.buckets.control, ControlKeys.degrade))?.value.level;

describe('circuits from sluice_circuits', () => {
  it('every deployment open in the bucket -> cached only (2); one half-open -> back down one level per hold', async () => {
    const kv = testBus.buckets.circuits;
    await kv.put('sim-a', encodeJson({ state: 'open', openedAt: Date.now(), failures: 5 }));
    await kv.put('sim-b', encodeJson({ state: 'open', openedAt: Date.now(), failures: 5 }));
    await eventuallyFound(async () => ((await level()) === 2 ? true : undefined), 10_000, 'level 2');
    expect(changes[0]?.data).toMatchObject({ from: 0, to: 2, signals: { openCircuits: 2, openCircuitShare: 1 } });
    expect(changes[0]?.data.causes).toEqual(["every deployment's circuit is open (sim-a, sim-b): nothing can answer a cache miss"]);

    await kv.put('sim-b', encodeJson({ state: 'half-open', openedAt: Date.now(), failures: 5 }));
    await eventuallyFound(async () => ((await level()) === 0 ? true : undefined), 10_000, 'level 0');
    expect(changes.map((e) => [e.data.from, e.data.to])).toEqual([
      [0, 2],
      [2, 1],
      [1, 0],
    ]);
  });
});
