import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Subscription } from '@nats-io/transport-node';
import { connectBus, ensureTopology, getJson, publishEvent, putDegrade, watchControl, type Bus, type Buckets } from '@sluice/bus';
import { eventually, eventuallyFound, startTestBus, type TestBus } from '@sluice/bus/testing';
import { ControlKeys, Consumers, makeEvent, ServiceName, Subjects, Topology, type DegradeState, type SluiceEvent } from '@sluice/contracts';
import { createLogger } from '@sluice/telemetry';
import { testConfig } from './fixtures.js';
import { startReplica, type Replica } from './replica.js';

const log = createLogger('degrader', process.env.LOG_LEVEL ?? 'silent');
// a short window, hold and lease so a recovery and a takeover take about a second; decisions every 50 ms
const LEASE_MS = 900;
const config = testConfig({ windowMs: 2000, minSamples: 5, minHoldMs: 200, leaseMs: LEASE_MS });

let testBus: TestBus;
let bus: Bus;
let buckets: Buckets;
let changes: Array<SluiceEvent<'degrade.changed'>> = [];
let sub: Subscription;
let seq = 0;

/** A replica on a connection of its own, as a process of its own would be. */
interface Running {
  replica: Replica;
  bus: Bus;
  stopControl(): void;
}
const replicas: Running[] = [];

async function startOne(): Promise<Running> {
  const own = await connectBus(testBus.nats.url, `degrader-${replicas.length}`, log);
  const ownBuckets = await ensureTopology(own);
  const control = await watchControl(ownBuckets.control, log);
  const replica = await startReplica({ bus: own, buckets: ownBuckets, control, log }, 50);
  const running = { replica, bus: own, stopControl: () => control.stop() };
  replicas.push(running);
  return running;
}
/** Stops a replica: gracefully (the lease handed back), or as a crash (its connection gone first, the lease left to run out). */
async function stopOne(r: Running, crash = false) {
  replicas.splice(replicas.indexOf(r), 1);
  if (crash) await r.bus.nc.close();
  for (const c of [...r.replica.closers].reverse()) await Promise.resolve(typeof c === 'function' ? c() : c.stop()).catch(() => undefined);
  r.stopControl();
  if (!crash) await r.bus.nc.close();
}
const leaders = () => replicas.filter((r) => r.replica.lease.leading());

const waitFor = <T>(what: string, find: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000) => eventuallyFound(find, timeoutMs, what);
const degradeKey = async () => (await getJson<DegradeState>(buckets.control, ControlKeys.degrade))?.value;
const levelIs = (level: number) => async () => {
  const v = await degradeKey();
  return v?.level === level ? v : undefined;
};
const transitions = () => changes.map((e) => [e.data.from, e.data.to]);

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

/** Samples `leaders()` every 10 ms for `ms`: the most replicas seen leading at once. */
async function mostLeadersAtOnce(ms: number): Promise<number> {
  let most = 0;
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 10))) most = Math.max(most, leaders().length);
  return most;
}

beforeAll(async () => {
  testBus = await startTestBus(config, { name: 'degrader' });
  ({ bus, buckets } = testBus);
  sub = bus.nc.subscribe(Subjects.eventsOf('degrade.changed'), { callback: (_, m) => void changes.push(m.json()) });
  // the shared durable of the single-replica degrader, as an upgraded deployment has it
  const legacy = Consumers.degraderInvoke;
  await bus.jsm.consumers.add(Topology.stream.name, { durable_name: legacy.durable, filter_subject: legacy.filter, ack_policy: 'explicit' });
  await startOne();
  await startOne();
});

afterAll(async () => {
  for (const r of [...replicas]) await stopOne(r);
  sub?.unsubscribe();
  await testBus?.stop();
});

describe('two degrader replicas', () => {
  it('drop the shared durable the single replica consumed (each follows the events itself)', async () => {
    await expect(bus.jsm.consumers.info(Topology.stream.name, Consumers.degraderInvoke.durable)).rejects.toThrow();
  });

  it('exactly one leads, and a burst of failures moves the level once per step, never twice', async () => {
    await waitFor('a leader', () => (leaders().length === 1 ? true : undefined));
    expect(await mostLeadersAtOnce(500)).toBe(1);

    await attempts(false, 10);
    const raised = await waitFor('level 3 in the control bucket', levelIs(3));
    expect(raised.override).toBeUndefined();
    expect(changes[0]).toMatchObject({ tenant: '_system', service: 'degrader', data: { from: 0, to: 3, manual: false } });
    expect(changes[0]!.reason).toMatch(/^failure ratio 1 over \d+ attempts in 2s ≥ 0.9$/);
    expect(changes[0]!.data.causes).toEqual([changes[0]!.reason]);
    // the follower saw every attempt too: its window is warm for a takeover
    await eventually(() => replicas.every((r) => r.replica.loop.state().samples.length === 10));

    await attempts(true, 40);
    await waitFor('level 0 in the control bucket', levelIs(0));
    // one event per step: a second writer would repeat a step or undo one
    expect(transitions()).toEqual([
      [0, 3],
      [3, 2],
      [2, 1],
      [1, 0],
    ]);
  });

  it('applies an operator override from the control bucket once, and keeps it in the record', async () => {
    changes = [];
    await putDegrade(buckets.control, { level: 4, override: 4, since: Date.now(), reason: 'operator override' });
    const event = await waitFor('override event', () => changes[0]);
    expect(event.data).toMatchObject({ from: 0, to: 4, manual: true });
    await waitFor('record written by the degrader', async () => ((await degradeKey())?.reason === 'operator override: level 4' ? true : undefined));
    expect(await degradeKey()).toMatchObject({ level: 4, override: 4 });
    await new Promise((r) => setTimeout(r, 300));
    expect(changes).toHaveLength(1);
  });

  it('when the leader crashes the follower takes over within the lease, keeps the override, and hands back to the signals when it is lifted', async () => {
    changes = [];
    const [leader] = leaders();
    const crashedAt = Date.now();
    await stopOne(leader!, true);
    const follower = replicas[0]!;
    await waitFor('the follower leading', () => (follower.replica.lease.leading() ? true : undefined), 5 * LEASE_MS);
    const takeoverMs = Date.now() - crashedAt;
    console.log(`degrader takeover after a crash: ${takeoverMs} ms (lease ${LEASE_MS} ms, beat ${LEASE_MS / 3} ms)`);
    // not before the crashed leader's lease ran out, and within about a lease and a beat after
    expect(takeoverMs).toBeGreaterThanOrEqual(LEASE_MS / 2);

    // a new replica joins as follower; the restored override holds whatever the signals say
    await startOne();
    await attempts(false, 10);
    await eventually(() => replicas.every((r) => r.replica.loop.state().samples.length >= 10));
    await new Promise((r) => setTimeout(r, 200));
    expect(changes).toEqual([]);

    await putDegrade(buckets.control, { level: 4, since: Date.now(), reason: 'override cleared by operator' });
    const lifted = await waitFor('hand-back event', () => changes[0]);
    expect(lifted.data).toMatchObject({ from: 4, to: 3, manual: false });
    expect(lifted.reason).toMatch(/^operator override lifted; failure ratio 1/);
    expect((await waitFor('record without override', async () => ((await degradeKey())?.level !== 4 ? degradeKey() : undefined)))?.override).toBeUndefined();
    await new Promise((r) => setTimeout(r, 300));
    expect(transitions()).toEqual([[4, 3]]);
  });

  it('when the leader stops gracefully it hands the lease back and the follower, watching the key, takes over at once', async () => {
    const [leader] = leaders();
    const other = replicas.find((r) => r !== leader)!;
    const stoppedAt = Date.now();
    await stopOne(leader!);
    await waitFor('the other leading', () => (other.replica.lease.leading() ? true : undefined), 5 * LEASE_MS);
    console.log(`degrader takeover after a graceful stop: ${Date.now() - stoppedAt} ms (lease ${LEASE_MS} ms)`);
    expect(await mostLeadersAtOnce(300)).toBe(1);
  });
});
