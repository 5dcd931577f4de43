import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { encodeJson } from '@sluice/bus';
import { startNatsCluster, type LocalNatsCluster } from '@sluice/bus/nats-cluster';
import { eventually } from '@sluice/bus/testing';
import { createLogger } from '@sluice/telemetry';
import { closedCircuit, decide, type CircuitSettings, type Outcome } from './circuit.js';
import { KvCircuits } from './circuit-store.js';

// nats-server 2.9.10 on a clustered stream checks a write's expected revision before proposing it,
// not when it is applied (nats-server#4320, docs/cluster.md): with plain kv.update two invoker
// replicas that saw one revision of a circuit could both be told their write made the transition,
// and both publish circuit.opened.
const log = createLogger('invoker', 'silent');
const settings: CircuitSettings = { circuitFailureThreshold: 1, circuitOpenMs: 60_000 };
const ROUNDS = 30;

let dir: string;
let cluster: LocalNatsCluster;
const conns: NatsConnection[] = [];
const stores: KvCircuits[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-circuits-cluster-'));
  cluster = await startNatsCluster(dir);
  const nc = await connect({ servers: cluster.url.split(',') });
  conns.push(nc);
  // a cluster that has just elected its meta leader may not know every peer yet
  await eventually(() => new Kvm(jetstream(nc)).create('circuits', { history: 1, replicas: 3 }), 30_000, { what: 'bucket circuits' });
  // three invoker replicas, each on a connection to a node of its own
  for (const node of cluster.nodes) {
    const c = await connect({ servers: node.url });
    conns.push(c);
    const store = new KvCircuits(await new Kvm(jetstream(c)).open('circuits'), log);
    await store.start();
    stores.push(store);
  }
}, 90_000);

afterAll(async () => {
  for (const s of stores) s.stop();
  for (const nc of conns) await nc.close();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('circuits on a three-node cluster', () => {
  it('of three replicas opening one closed circuit at once, one makes the transition, every round', async () => {
    const writer = await new Kvm(jetstream(conns[0]!)).open('circuits');
    const transitions: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // closed again, and every replica has seen it: all three decide on the same revision
      await writer.put('east', encodeJson(closedCircuit));
      await eventually(() => stores.every((s) => s.view('east')?.state === 'closed'), 10_000);
      const at = Date.now();
      const outcomes: Outcome[] = await Promise.all(
        stores.map((s) => s.apply('east', (c) => (c.state === 'closed' ? decide(c, { kind: 'failure' }, at, settings) : { circuit: c }))),
      );
      transitions.push(outcomes.filter((o) => o.transition?.to === 'opened').length);
    }
    const several = transitions.filter((n) => n > 1).length;
    console.log(JSON.stringify({ rounds: ROUNDS, roundsWithSeveralTransitions: several, transitions: transitions.join('') }));
    expect(several).toBe(0);
    expect(transitions.every((n) => n === 1)).toBe(true);
  });
});
