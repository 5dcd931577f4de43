import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Subscription } from '@nats-io/transport-node';
import { consumeEvents, getJson, publishEvent, putDegrade, type Bus, type Buckets, type Closer, type Control } from '@sluice/bus';
import { eventuallyFound, startTestBus, type TestBus } from '@sluice/bus/testing';
import { Consumers, ControlKeys, makeEvent, ServiceName, Subjects, Topology, type DegradeState, type SluiceEvent } from '@sluice/contracts';
import { createLogger } from '@sluice/telemetry';
import { testConfig } from './fixtures.js';
import { onCircuitChanged, onInvokeAttempted, onOverride } from './handlers.js';
import { openLoop } from './open-loop.js';
import { watchOverride } from './record.js';

const log = createLogger('degrader', 'silent');
// a short window and hold so a recovery takes seconds; decisions every 50 ms
const config = testConfig({ windowMs: 2000, minSamples: 5, minHoldMs: 200 });

let testBus: TestBus;
let bus: Bus;
let buckets: Buckets;
let control: Control;
let changes: Array<SluiceEvent<'degrade.changed'>> = [];
let sub: Subscription;
let running: Array<Closer | { stop(): Promise<void> | void }> = [];
let seq = 0;

/** Wired as main.ts wires it, with a 50 ms tick. */
async function start() {
  const loop = await openLoop({ bus, buckets, control, log });
  const attempts = await consumeEvents(bus, { consumer: Consumers.degraderInvoke, concurrency: 1000, lingerMs: 250, log, handler: onInvokeAttempted(loop) });
  const circuits = await consumeEvents(bus, { consumer: Consumers.degraderCircuit, concurrency: 64, log, handler: onCircuitChanged(loop) });
  const override = await watchOverride(buckets.control, onOverride(loop));
  control.onChange(() => void loop.step());
  const tick = setInterval(() => void loop.step(), 50);
  running = [() => clearInterval(tick), override, attempts, circuits];
}
async function stop() {
  for (const c of running.reverse()) await (typeof c === 'function' ? c() : c.stop());
  running = [];
}

const waitFor = <T>(what: string, find: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000) => eventuallyFound(find, timeoutMs, what);
const degradeKey = async () => (await getJson<DegradeState>(buckets.control, ControlKeys.degrade))?.value;
const levelIs = (level: number) => async () => {
  const v = await degradeKey();
  return v?.level === level ? v : undefined;
};

async function attempts(ok: boolean, n: number) {
  for (let i = 0; i < n; i++) {
    seq++;
    await publishEvent(
      bus.js,
      makeEvent(
        'invoke.attempted',
        { requestId: `r${seq}`, tenant: 'acme', service: ServiceName.Invoker, at: Date.now(), reason: ok ? 'answered' : 'upstream 500', suffix: 1 },
        { attempt: 1, model: 'small', deployment: 'sim-a', ok, latencyMs: 40, ...(ok ? {} : { status: 500 }) },
      ),
    );
  }
}

beforeAll(async () => {
  testBus = await startTestBus(config, { name: 'degrader' });
  ({ bus, buckets, control } = testBus);
  sub = bus.nc.subscribe(Subjects.eventsOf('degrade.changed'), { callback: (_, m) => void changes.push(m.json()) });
  await start();
});

afterAll(async () => {
  await stop();
  sub?.unsubscribe();
  await testBus?.stop();
});

describe('degrader service', () => {
  it('raises to static fallback on a burst of failures, then steps down one level at a time as they age out', async () => {
    await attempts(false, 10);
    const raised = await waitFor('level 3 in the control bucket', levelIs(3));
    expect(raised.override).toBeUndefined();
    expect(changes[0]).toMatchObject({ tenant: '_system', service: 'degrader', data: { from: 0, to: 3, manual: false } });
    expect(changes[0]!.reason).toMatch(/^failure ratio 1 over \d+ attempts in 2s ≥ 0.9$/);

    await attempts(true, 40);
    await waitFor('level 0 in the control bucket', levelIs(0));
    expect(changes.map((e) => [e.data.from, e.data.to])).toEqual([
      [0, 3],
      [3, 2],
      [2, 1],
      [1, 0],
    ]);
  });

  it('applies an operator override from the control bucket and keeps it in the record', async () => {
    changes = [];
    await putDegrade(buckets.control, { level: 4, override: 4, since: Date.now(), reason: 'operator override' });
    const event = await waitFor('override event', () => changes[0]);
    expect(event.data).toMatchObject({ from: 0, to: 4, manual: true });
    await waitFor('record written by the degrader', async () => ((await degradeKey())?.reason === 'operator override: level 4' ? true : undefined));
    expect(await degradeKey()).toMatchObject({ level: 4, override: 4 });
  });

  it('after a restart keeps the override, and hands back to the signals when it is lifted', async () => {
    await stop();
    changes = [];
    await start();
    await attempts(false, 10);
    // the new instance has taken every failure in; without the restored override it would now raise 0 -> 3
    await waitFor('failures consumed', async () => {
      const info = await bus.jsm.consumers.info(Topology.stream.name, Consumers.degraderInvoke.durable);
      return info.num_pending === 0 && info.num_ack_pending === 0 ? true : undefined;
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(changes).toEqual([]);

    await putDegrade(buckets.control, { level: 4, since: Date.now(), reason: 'override cleared by operator' });
    const lifted = await waitFor('hand-back event', () => changes[0]);
    expect(lifted.data).toMatchObject({ from: 4, manual: false });
    expect(lifted.reason).toMatch(/^operator override lifted; /);
    expect((await waitFor('record without override', async () => ((await degradeKey())?.level !== 4 ? degradeKey() : undefined)))?.override).toBeUndefined();
  });
});
