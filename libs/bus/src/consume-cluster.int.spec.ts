// consumeEvents on a three-node cluster when the node leading its durable dies: the replica's
// standing pull lived on that node, and nothing tells the replica (connected to another node) it
// is gone but the missed idle heartbeats. The chaos run's pauses of 20 s and more after a node
// kill came from this (docs/cluster.md). It must go on taking messages from the new leader; how
// long it waited is printed, not asserted.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Subjects, Topology, type ConsumerSpec } from '@sluice/contracts';
import { chatRequest, requestContext, requested } from '@sluice/contracts/testing';
import { createLogger } from '@sluice/telemetry';
import { connectBus, type Bus } from './connect.js';
import { consumeEvents } from './consume.js';
import { NOTHING } from './decided.js';
import { startNatsCluster, type LocalNatsCluster } from './nats-cluster.js';
import { publishEvent } from './publish.js';
import { ensureDurable, DEFAULT_ACK_WAIT_MS } from './runner.js';
import { eventually } from './testing.js';
import { ensureTopology } from './topology.js';

let dir: string;
let cluster: LocalNatsCluster;
let publisher: Bus;
const consumers: Bus[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-consume-cluster-'));
  cluster = await startNatsCluster(dir);
  publisher = await connectBus(cluster.url, 'publisher');
  // the meta leader may not know every peer yet ("no suitable peers for placement")
  await eventually(() => ensureTopology(publisher, { replicas: 3 }), 60_000, { what: 'the topology at 3 replicas' });
}, 120_000);

afterAll(async () => {
  for (const b of [publisher, ...consumers]) await b?.nc.close();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('consumeEvents on a three-node cluster', () => {
  it('takes messages again soon after the node leading its durable dies, from a replica connected to another node', async () => {
    const spec: ConsumerSpec = {
      durable: 'stall-test',
      service: 'router',
      filter: Subjects.eventsOf('chat.requested'),
      receives: ['chat.requested'],
      emits: [],
    };
    await ensureDurable(publisher, spec, { maxAckPending: 64, ackWaitMs: DEFAULT_ACK_WAIT_MS });
    const leader = await eventually(async () => (await publisher.jsm.consumers.info(Topology.stream.name, spec.durable)).cluster?.leader ?? false, 30_000);
    // the replica's connection is to a node that stays up, so only the pull is lost, not the connection
    const survivor = cluster.nodes.find((n) => n.name !== leader)!;
    const bus = await connectBus(survivor.url, 'replica');
    consumers.push(bus);
    const handledAt = new Map<string, number>();
    const consumption = await consumeEvents(bus, {
      consumer: spec,
      concurrency: 64,
      log: createLogger('stall-test', process.env.LOG_LEVEL ?? 'silent'),
      handler: async (event) => {
        if (!handledAt.has(event.requestId)) handledAt.set(event.requestId, Date.now());
        return NOTHING;
      },
    });
    const send = (id: string) => publishEvent(publisher.js, requested(id, 'acme', { ctx: requestContext(chatRequest()) }));
    await send('warm');
    await eventually(() => handledAt.has('warm'), 10_000);

    // one event every 100 ms from the kill on, for 15 s
    const killedAt = Date.now();
    await cluster.kill(leader);
    const sent: string[] = [];
    for (let i = 0; i < 150; i++) {
      const id = `after_${i}`;
      sent.push(id);
      void send(id).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 100));
    }
    await eventually(() => sent.every((id) => handledAt.has(id)), 90_000, { what: 'every event sent after the kill to be handled' });
    const firstAfterKillMs = Math.min(...sent.map((id) => handledAt.get(id)!)) - killedAt;
    // the longest time the replica handled nothing while events kept coming
    const times = [killedAt, ...[...handledAt.values()].filter((t) => t >= killedAt).sort((a, b) => a - b)];
    const longestGapMs = Math.max(...times.slice(1).map((t, i) => t - times[i]!));
    console.log(JSON.stringify({ consumerLeaderKilled: leader, replicaOn: survivor.name, firstHandledAfterKillMs: firstAfterKillMs, longestGapMs }));
    await consumption.stop();
    await cluster.restart(leader);
    expect(sent.every((id) => handledAt.has(id))).toBe(true);
  }, 180_000);
});
