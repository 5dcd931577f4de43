import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { startNatsCluster, type LocalNatsCluster } from './nats-cluster.js';
import { eventually } from './testing.js';

let dir: string;
let cluster: LocalNatsCluster;
let nc: NatsConnection;
let jsm: JetStreamManager;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-cluster-'));
  cluster = await startNatsCluster(dir);
  nc = await connect({ servers: cluster.url.split(','), maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  jsm = await jetstreamManager(nc);
});

afterAll(async () => {
  await nc?.close();
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('a three-node loopback cluster', () => {
  it('keeps a stream at 3 replicas through the kill of its leader: every acked message is still there, and it takes writes again', async () => {
    const name = `S${Date.now()}`;
    await jsm.streams.add({ name, subjects: [`${name}.>`], num_replicas: 3 });
    const js = jetstream(nc);
    for (let i = 0; i < 50; i++) await js.publish(`${name}.a`, `m${i}`);
    const info = await jsm.streams.info(name);
    expect(info.cluster?.replicas).toHaveLength(2);
    const leader = info.cluster!.leader!;

    await cluster.kill(leader);
    // a new leader among the two left, with everything the old one acked
    const after = await eventually(async () => {
      const i = await jsm.streams.info(name);
      expect(i.cluster?.leader).toBeTruthy();
      expect(i.cluster?.leader).not.toBe(leader);
      return i;
    }, 30_000);
    expect(after.state.messages).toBe(50);
    await eventually(() => js.publish(`${name}.a`, 'after'), 15_000);

    await cluster.restart(leader);
    // the old leader catches up as a follower
    await eventually(async () => {
      const i = await jsm.streams.info(name);
      const back = i.cluster?.replicas?.find((r) => r.name === leader);
      expect(back?.current).toBe(true);
      expect(i.state.messages).toBe(51);
    }, 30_000);
  });
});
