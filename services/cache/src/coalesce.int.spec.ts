import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kvm } from '@nats-io/kv';
import { connectBus, publishEvent, type Bus } from '@sluice/bus';
import { eventually, minimalConfig, startTestBus, type TestBus } from '@sluice/bus/testing';
import { makeEvent, ServiceName } from '@sluice/contracts';
import { answer } from '@sluice/contracts/testing';
import { Coalescer, type Joined } from './coalesce.js';
import { keyOf } from './fixtures.js';

// Three replicas: three connections to one private nats-server, each with its own Coalescer on
// its own handle of one bucket (this file's own, so the Topology's bucket is never touched).
const BUCKET = `coalesce_test_${process.pid}`;
let testBus: TestBus;
const buses: Bus[] = [];
const replicas: Coalescer[] = [];
let leaderTimeoutMs = 30_000;

const minute = () => Date.now() + 60_000;
/** Until `n` joins wait for a leader across the replicas: an answer before a join read the record would rightly make it take over. */
const waitingAre = (n: number) => eventually(() => replicas.reduce((sum, c) => sum + c.waiting(), 0) === n);
const leaders = (joined: Joined[]) => joined.filter((j) => j.role === 'leader');
const followers = (joined: Joined[]) => joined.filter((j) => j.role === 'follower');

/** Joins `n` requests `<prefix>-<i>` to `key`, spread over the three replicas, all at once. */
function joinMany(key: string, prefix: string, n: number, deadline = minute()): Array<{ id: string; joined: Promise<Joined> }> {
  return Array.from({ length: n }, (_, i) => ({ id: `${prefix}-${i}`, joined: replicas[i % 3]!.join(key, `${prefix}-${i}`, deadline) }));
}

/** Resolves with the first of `pending` to settle as leader (its index), the others still pending. */
async function firstLeader(pending: Array<{ id: string; joined: Promise<Joined> }>): Promise<{ id: string; joined: Joined; index: number }> {
  return new Promise((resolve) =>
    pending.forEach((p, index) => void p.joined.then((joined) => joined.role === 'leader' && resolve({ id: p.id, joined, index }))),
  );
}

beforeAll(async () => {
  testBus = await startTestBus(minimalConfig([{ id: 'acme' }]), { name: 'coalesce' });
  await new Kvm(testBus.bus.js).create(BUCKET, { history: 1, ttl: 600_000 });
  for (let i = 0; i < 3; i++) {
    const bus = await connectBus(testBus.nats.url, `coalesce-${i}`);
    const kv = await new Kvm(bus.js).open(BUCKET);
    const c = new Coalescer({ kv, nc: bus.nc, leaderTimeoutMs: () => leaderTimeoutMs, log: testBus.log });
    await c.start();
    buses.push(bus);
    replicas.push(c);
  }
});

afterAll(async () => {
  for (const c of replicas) await c.stop();
  for (const b of buses) await b.nc.close();
  await testBus?.stop();
});

describe('Coalescer across three replicas', () => {
  it('30 identical joins make one leader; after its answer the 29 others follow with it', async () => {
    leaderTimeoutMs = 30_000;
    const key = keyOf('acme', 'launch day question');
    const pending = joinMany(key, 'a', 30);
    const leader = await firstLeader(pending);
    expect(leader.joined).toMatchObject({ role: 'leader' });
    expect((leader.joined as { takeover?: string }).takeover).toBeUndefined();
    await waitingAre(29);
    const reply = answer('gpt-4o-mini', 20, 2, 'Launch at noon.');
    await replicas[leader.index % 3]!.answered(key, leader.id, (leader.joined as { revision: number }).revision, reply);

    const joined = await Promise.all(pending.map((p) => p.joined));
    expect(leaders(joined)).toHaveLength(1);
    expect(followers(joined)).toHaveLength(29);
    for (const f of followers(joined)) expect(f).toMatchObject({ leaderRequestId: leader.id, answer: reply });
  });

  it('a leader that never answers is taken over by exactly one follower after the timeout; the others follow the new leader', async () => {
    leaderTimeoutMs = 1_500;
    const key = keyOf('acme', 'silent leader');
    const first = await replicas[0]!.join(key, 'b-leader', minute());
    expect(first).toMatchObject({ role: 'leader' });
    const pending = joinMany(key, 'b', 12);
    const next = await firstLeader(pending);
    expect(next.joined).toMatchObject({ role: 'leader', takeover: 'leader b-leader gave no answer in 1500 ms' });
    await waitingAre(11);
    const reply = answer('gpt-4o-mini', 20, 2, 'Second time lucky.');
    await replicas[next.index % 3]!.answered(key, next.id, (next.joined as { revision: number }).revision, reply);

    const joined = await Promise.all(pending.map((p) => p.joined));
    expect(leaders(joined)).toHaveLength(1);
    expect(followers(joined)).toHaveLength(11);
    for (const f of followers(joined)) expect(f).toMatchObject({ leaderRequestId: next.id, answer: reply });
    // the silent leader's late answer loses its compare-and-set and changes nothing
    await replicas[0]!.answered(key, 'b-leader', (first as { revision: number }).revision, answer());
  });

  it("a leader's chat.failed lets one follower take over at once, not after the timeout", async () => {
    leaderTimeoutMs = 120_000; // longer than the test's own timeout: only the event can end the wait
    const key = keyOf('acme', 'failing leader');
    const first = await replicas[1]!.join(key, 'c-leader', minute());
    expect(first.role).toBe('leader');
    const pending = joinMany(key, 'c', 9);
    await waitingAre(9);
    const failed = makeEvent(
      'chat.failed',
      { requestId: 'c-leader', tenant: 'acme', service: ServiceName.Invoker, at: Date.now(), reason: 'every deployment failed' },
      { code: 'upstream_failed', status: 502, message: 'Every upstream deployment failed.', attempts: 3, receivedAt: Date.now() },
    );
    await publishEvent(testBus.bus.js, failed);
    const next = await firstLeader(pending);
    expect(next.joined).toMatchObject({ role: 'leader', takeover: 'leader c-leader ended without an answer (chat.failed)' });
    await waitingAre(8);
    await replicas[next.index % 3]!.answered(key, next.id, (next.joined as { revision: number }).revision, answer());
    const joined = await Promise.all(pending.map((p) => p.joined));
    expect(leaders(joined)).toHaveLength(1);
    expect(followers(joined).every((f) => f.leaderRequestId === next.id)).toBe(true);
  });

  it('a follower whose deadline comes before any answer gets expired at its deadline', async () => {
    leaderTimeoutMs = 30_000;
    const key = keyOf('acme', 'slow leader');
    expect((await replicas[0]!.join(key, 'd-leader', minute())).role).toBe('leader');
    const deadline = Date.now() + 400;
    const joined = await replicas[2]!.join(key, 'd-1', deadline);
    expect(joined).toMatchObject({ role: 'expired', leaderRequestId: 'd-leader' });
    expect(Date.now()).toBeGreaterThanOrEqual(deadline);
  });

  it("a redelivered join of the leader leads again, with its record's revision", async () => {
    const key = keyOf('acme', 'redelivered');
    const first = await replicas[0]!.join(key, 'e-leader', minute());
    const again = await replicas[1]!.join(key, 'e-leader', minute());
    expect(first).toMatchObject({ role: 'leader' });
    expect(again).toEqual({ role: 'leader', revision: (first as { revision: number }).revision });
  });

  it('a leader released without an answer lets its followers contend again at once', async () => {
    leaderTimeoutMs = 120_000;
    const key = keyOf('acme', 'released leader');
    const first = (await replicas[2]!.join(key, 'f-leader', minute())) as { revision: number };
    const pending = joinMany(key, 'f', 6);
    await waitingAre(6);
    await replicas[2]!.release(key, 'f-leader', first.revision);
    const next = await firstLeader(pending);
    expect(next.joined).toMatchObject({ role: 'leader', takeover: 'leader f-leader left without an answer' });
    await waitingAre(5);
    await replicas[next.index % 3]!.answered(key, next.id, (next.joined as { revision: number }).revision, answer());
    expect(followers(await Promise.all(pending.map((p) => p.joined)))).toHaveLength(5);
  });

  it('without NATS, a join leads alone (revision 0) instead of failing the request', async () => {
    const bus = await connectBus(testBus.nats.url, 'coalesce-closed');
    const c = new Coalescer({ kv: await new Kvm(bus.js).open(BUCKET), nc: bus.nc, leaderTimeoutMs: () => 30_000, log: testBus.log });
    await c.start();
    await bus.nc.close();
    const joined = await c.join(keyOf('acme', 'no nats'), 'g-1', minute());
    expect(joined).toMatchObject({ role: 'leader', revision: 0 });
    expect((joined as { takeover: string }).takeover).toMatch(/^coalescing unavailable: /);
    await c.answered(keyOf('acme', 'no nats'), 'g-1', 0, answer()); // revision 0: nothing to do, no throw
  });

  it('prints what a join costs: a leader (one create), a follower woken by an answer', async () => {
    leaderTimeoutMs = 30_000;
    const n = 300;
    const leadMs: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      await replicas[0]!.join(keyOf('acme', `cost ${i}`), `h-${i}`, minute());
      leadMs.push(performance.now() - t);
    }
    const wokenMs: number[] = [];
    for (let i = 0; i < 50; i++) {
      const key = keyOf('acme', `woken ${i}`);
      const lead = (await replicas[0]!.join(key, `w-${i}`, minute())) as { revision: number };
      const follower = replicas[1]!.join(key, `w-${i}-f`, minute());
      await waitingAre(1);
      const t = performance.now();
      await replicas[0]!.answered(key, `w-${i}`, lead.revision, answer());
      expect((await follower).role).toBe('follower');
      wokenMs.push(performance.now() - t);
    }
    // CPU of this process (the three replicas' clients) per follower: 300 followers of one key, joined and answered
    const key = keyOf('acme', 'cpu per follower');
    const lead = (await replicas[0]!.join(key, 'cpu-leader', minute())) as { revision: number };
    const cpu = process.cpuUsage();
    const pending = joinMany(key, 'cpu', 300);
    await waitingAre(300);
    await replicas[0]!.answered(key, 'cpu-leader', lead.revision, answer());
    expect(followers(await Promise.all(pending.map((p) => p.joined)))).toHaveLength(300);
    const used = process.cpuUsage(cpu);
    // what a JetStream watch per key would cost instead of the core subscription: create, first value, stop
    const watchMs: number[] = [];
    const subMs: number[] = [];
    const kv = await new Kvm(buses[1]!.js).open(BUCKET);
    for (let i = 0; i < 30; i++) {
      let t = performance.now();
      const w = await kv.watch({ key });
      for await (const _ of w) break;
      w.stop();
      watchMs.push(performance.now() - t);
      t = performance.now();
      const sub = buses[1]!.nc.subscribe(`$KV.${BUCKET}.${key}`);
      await buses[1]!.nc.flush();
      sub.unsubscribe();
      subMs.push(performance.now() - t);
    }
    const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * p)]!.toFixed(2);
    console.log(
      `coalesce: leader join p50 ${pct(leadMs, 0.5)} ms p99 ${pct(leadMs, 0.99)} ms (n=${n}); ` +
        `answered() to follower resolved (other replica) p50 ${pct(wokenMs, 0.5)} ms p99 ${pct(wokenMs, 0.99)} ms (n=50); ` +
        `client CPU per follower ${((used.user + used.system) / 300 / 1000).toFixed(3)} ms (300 on one key, 3 replicas); ` +
        `per-key kv.watch start+first+stop p50 ${pct(watchMs, 0.5)} ms vs core subscribe+flush p50 ${pct(subMs, 0.5)} ms`,
    );
  });
});
