import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, ensureTopology, publishEvent, type Bus } from '@sluice/bus';
import { collectEvents, eventually, minimalConfig, startTestBus, type TestBus } from '@sluice/bus/testing';
import { admit, decide, type CircuitInput, type CircuitSettings, type Outcome } from './circuit.js';
import { circuitEvent } from './circuit-events.js';
import { KvCircuits } from './circuit-store.js';

// Three stores on three connections to one private nats-server: three invoker replicas' circuits.
const settings: CircuitSettings = { circuitFailureThreshold: 3, circuitOpenMs: 300, circuitHalfOpenTrials: 2, circuitSuccessesToClose: 2 };

let env: TestBus;
let events: ReturnType<typeof collectEvents>;
const buses: Bus[] = [];
const replicas: KvCircuits[] = [];

beforeAll(async () => {
  env = await startTestBus(minimalConfig([{ id: 'acme' }]), { name: 'circuits' });
  events = collectEvents(env.bus);
  for (let i = 0; i < 3; i++) {
    const bus = await connectBus(env.nats.url, `invoker-${i + 1}`, env.log);
    buses.push(bus);
    const store = new KvCircuits((await ensureTopology(bus)).circuits, env.log);
    await store.start();
    replicas.push(store);
  }
});

afterAll(async () => {
  for (const r of replicas) r.stop();
  events.stop();
  for (const b of buses) await b.nc.close();
  await env.stop();
});

/** What the invoker does with a call's verdict: apply it, and publish the transition if this replica's write made it. */
async function report(replica: number, deployment: string, input: CircuitInput, requestId = `r-${replica}`): Promise<Outcome> {
  const at = Date.now();
  const o = await replicas[replica]!.apply(deployment, (c) => decide(c, input, at, settings));
  if (o.transition) await publishEvent(buses[replica]!.js, circuitEvent(deployment, o.circuit, o.transition, requestId, at));
  return o;
}

const ofDeployment = (type: 'circuit.opened' | 'circuit.half_opened' | 'circuit.closed' | 'deployment.paused', deployment: string) =>
  events.of(type).filter((e) => e.data.deployment === deployment);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

describe('circuits shared by three replicas', () => {
  it('opens once on failures through replicas 1 and 2, is seen open by all three, admits exactly the trials, and closes once', async () => {
    const d = 'east';
    // six failures at once, three through each of two replicas: the third to land opens it, once
    const outcomes = await Promise.all([0, 1, 0, 1, 0, 1].map((r, i) => report(r, d, { kind: 'failure' }, `fail-${i}`)));
    expect(outcomes.filter((o) => o.transition?.to === 'opened')).toHaveLength(1);
    await eventually(() => replicas.every((r) => r.view(d)?.state === 'open'), 2000, { what: 'every replica to see the circuit open' });
    expect(replicas.map((r) => admit(r.view(d)!, Date.now(), settings).allow)).toEqual([false, false, false]);

    // after circuitOpenMs, three claims through each replica at once: exactly circuitHalfOpenTrials go
    await eventually(() => replicas[2]!.view(d)!.openedAt + settings.circuitOpenMs <= Date.now(), 2000);
    const claims = await Promise.all(
      Array.from({ length: 9 }, (_, i) => ({ replica: i % 3, trial: `trial-${i}` })).map(async (c) => ({
        ...c,
        outcome: await report(c.replica, d, { kind: 'trial', trial: c.trial }, c.trial),
      })),
    );
    const admitted = claims.filter((c) => c.outcome.refused === undefined);
    expect(admitted).toHaveLength(settings.circuitHalfOpenTrials!);
    expect(claims.filter((c) => c.outcome.transition?.to === 'half-opened')).toHaveLength(1);
    await eventually(() => replicas.every((r) => !admit(r.view(d)!, Date.now(), settings).allow), 2000, { what: 'every replica to see the slots taken' });

    // the trials succeed, each through the replica that claimed it: the second closes the circuit
    const closes = [];
    for (const c of admitted) closes.push(await report(c.replica, d, { kind: 'success', trial: c.trial }, c.trial));
    expect(closes.map((o) => o.transition?.to)).toEqual([undefined, 'closed']);
    await eventually(() => replicas.every((r) => r.view(d)?.state === 'closed'), 2000, { what: 'every replica to see the circuit closed' });

    await events.until(() => ofDeployment('circuit.closed', d).length === 1);
    expect(ofDeployment('circuit.opened', d)).toHaveLength(1);
    expect(ofDeployment('circuit.half_opened', d)).toHaveLength(1);
    expect(ofDeployment('circuit.closed', d)).toHaveLength(1);
    expect(ofDeployment('circuit.opened', d)[0]!.data).toEqual({ deployment: d, failures: 3, openForMs: 300 });
  });

  it('a 429 with Retry-After through every replica pauses the deployment for all three, once, and opens nothing', async () => {
    const d = 'limited';
    const outcomes = await Promise.all([0, 1, 2, 0, 1, 2].map((r) => report(r, d, { kind: 'paused', retryAfterMs: 5000 })));
    expect(outcomes.filter((o) => o.transition?.to === 'paused')).toHaveLength(1);
    await eventually(() => replicas.every((r) => (r.view(d)?.pausedUntil ?? 0) > Date.now()), 2000, { what: 'every replica to see the pause' });
    for (const r of replicas) {
      expect(r.view(d)).toMatchObject({ state: 'closed', failures: 0 });
      expect(admit(r.view(d)!, Date.now(), settings)).toMatchObject({ allow: false, reason: expect.stringMatching(/^paused by the upstream's Retry-After/) });
    }
    await events.until(() => ofDeployment('deployment.paused', d).length === 1);
    expect(ofDeployment('deployment.paused', d)[0]!.data).toMatchObject({ deployment: d, retryAfterMs: 5000 });
    expect(ofDeployment('circuit.opened', d)).toEqual([]);
  });

  it('a healthy deployment costs no KV write or read, whatever the traffic', async () => {
    const before = replicas.map((r) => ({ ...r.counts }));
    await Promise.all(Array.from({ length: 300 }, (_, i) => report(i % 3, 'healthy', { kind: 'success' })));
    expect(replicas.map((r) => r.counts)).toEqual(before);
    console.log('KV writes per healthy request: 0 (300 successes through 3 replicas, 0 writes, 0 reads)');
  });

  it('loses no failure when three replicas count at once (compare-and-set per failure), and says what it costs', async () => {
    const d = 'contended';
    const wide = { ...settings, circuitFailureThreshold: 10_000 };
    const before = replicas.reduce((n, r) => n + r.counts.conflicts, 0);
    const started = performance.now();
    await Promise.all(
      Array.from({ length: 90 }, (_, i) => {
        const at = Date.now();
        return replicas[i % 3]!.apply(d, (c) => decide(c, { kind: 'failure' }, at, wide));
      }),
    );
    const ms = performance.now() - started;
    const conflicts = replicas.reduce((n, r) => n + r.counts.conflicts, 0) - before;
    await eventually(() => replicas.every((r) => r.view(d)?.failures === 90), 2000, { what: 'all 90 failures counted on every replica' });
    console.log(`90 failures at once through 3 replicas: ${ms.toFixed(1)} ms, ${conflicts} lost races re-decided (${(ms / 90).toFixed(2)} ms per failure)`);
  });

  it('converges: a write through one replica is in the other two views within a few ms (figures printed)', async () => {
    const d = 'converge';
    const wide = { ...settings, circuitFailureThreshold: 10_000 };
    const lags: number[] = [];
    for (let i = 0; i < 100; i++) {
      const writer = i % 3;
      // from the start of the write (its round trip included): the others often hear it before the writer's ack is back
      const written = performance.now();
      const o = await replicas[writer]!.apply(d, (c) => decide(c, { kind: 'failure' }, Date.now(), wide));
      const others = replicas.filter((_, j) => j !== writer);
      const seen = others.map(() => 0);
      // spin on the event loop (no timer granularity) until both others hold the new count
      while (seen.some((t) => t === 0)) {
        others.forEach((r, j) => {
          if (seen[j] === 0 && r.view(d)?.failures === o.circuit.failures) seen[j] = performance.now() - written;
        });
        if (performance.now() - written > 2000) throw new Error(`write ${i} not seen by every replica in 2 s`);
        await new Promise((r) => setImmediate(r));
      }
      lags.push(...seen);
    }
    lags.sort((a, b) => a - b);
    console.log(
      `convergence across replicas, from the start of a write to another replica's view holding it (${lags.length} observations, one process): p50 ${percentile(lags, 50).toFixed(2)} ms, p99 ${percentile(lags, 99).toFixed(2)} ms, max ${lags[lags.length - 1]!.toFixed(2)} ms`,
    );
    expect(replicas.every((r) => r.view(d)?.failures === 100)).toBe(true);
  });
});
