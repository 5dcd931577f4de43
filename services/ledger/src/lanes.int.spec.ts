import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pullEvents, publishEvent, NOTHING } from '@sluice/bus';
import { minimalConfig, startTestBus, type TestBus } from '@sluice/bus/testing';
import { invokerConsumer, parseConfig, type SluiceConfig } from '@sluice/contracts';
import { requested, routed } from '@sluice/contracts/testing';
import { createDb, type Db } from './db.js';
import { migrate } from './migrate.js';
import { consumerDepth, laneSlots, lanesRoute } from './lanes.js';

// GET /v1/lanes against a real nats-server (the lane durables' consumer info) and PGlite (the
// recent upstream call times in the events table).
let env: TestBus;
let db: Db;
let dataDir: string;
let app: FastifyInstance;
const config: SluiceConfig = parseConfig({
  ...minimalConfig([{ id: 'acme' }]),
  invoker: { concurrency: 10 },
  lanes: { batch: { share: 0.3, maxConcurrency: 2 } },
});

beforeAll(async () => {
  env = await startTestBus(config, { name: 'ledger-lanes' });
  dataDir = mkdtempSync(join(tmpdir(), 'sluice-ledger-lanes-'));
  db = createDb({ dataDir });
  await migrate(db);
  app = Fastify();
  lanesRoute(app, { db, config: () => config, depth: consumerDepth(env.bus.jsm) });
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  await db?.destroy();
  await env?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const lanes = async () => {
  const res = await app.inject({ url: '/v1/lanes' });
  expect(res.statusCode).toBe(200);
  return res.json<{ serviceMs: number | null; serviceSamples: number; data: Array<Record<string, unknown>> }>();
};

describe('GET /v1/lanes', () => {
  it('given no invoker has started, then every lane is empty and no wait can be estimated', async () => {
    const body = await lanes();
    expect(body.data.map((l) => l.lane)).toEqual(['critical', 'realtime', 'standard', 'batch', 'low']);
    expect(body.data.every((l) => l.pending === 0 && l.ackPending === 0 && l.estimatedWaitMs === null)).toBe(true);
    expect(body.serviceMs).toBeNull();
  });

  it('given requests waiting in the batch lane and recent calls of 400 ms, then its depth and pending × 400 / its slots', async () => {
    // the durable as an invoker creates it, and nothing pulled: every request waits in the stream
    const batch = await pullEvents(env.bus, { consumer: invokerConsumer('batch'), maxAckPending: 100, log: env.log, handler: async () => NOTHING });
    for (let i = 0; i < 6; i++) await publishEvent(env.bus.js, routed(`r${i}`, 'acme', { ctx: requested(`r${i}`, 'acme').data.ctx, lane: 'batch' }));
    // and one taken, not acked: it counts as ackPending
    let held: { putBack(): void } | undefined;
    await batch.pull(1, (m) => (held = m));
    for (const [seq, ms, attempts] of [
      [1, 300, 1],
      [2, 500, 2],
      [3, 0, 0], // a static answer: no upstream call, not timed
    ] as const) {
      await db
        .insertInto('events')
        .values({
          seq,
          request_id: `c${seq}`,
          type: 'chat.completed',
          tenant: 'acme',
          service: 'invoker',
          at: new Date(),
          reason: '',
          data: JSON.stringify({ upstreamLatencyMs: ms, attempts }),
        })
        .execute();
    }
    const body = await lanes();
    expect(body).toMatchObject({ serviceMs: 400, serviceSamples: 2 });
    const b = body.data.find((l) => l.lane === 'batch')!;
    // share 0.3 of 10 slots is 3, capped at 2
    expect(b).toMatchObject({ durable: 'invoker-batch', pending: 5, ackPending: 1, share: 0.3, maxConcurrency: 2, slots: 2, estimatedWaitMs: 1000 });
    expect(body.data.find((l) => l.lane === 'low')).toMatchObject({ pending: 0, estimatedWaitMs: 0, slots: 1 });
    held!.putBack();
    await batch.stop();
  });

  it('counts at least one slot for a lane with no share, and never more than its cap', () => {
    expect(laneSlots(0, undefined, 8)).toBe(1);
    expect(laneSlots(0.5, 2, 8)).toBe(2);
    expect(laneSlots(0.3, undefined, 10)).toBeCloseTo(3);
  });
});
