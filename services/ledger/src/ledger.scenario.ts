// The ledger's integration scenario, run against real Postgres and against PGlite.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { connectBus, ensureTopology, listParked, publishEvent, replayParked, type Bus } from '@sluice/bus';
import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { Consumers, Subjects, Topology, makeEvent, type AnyEvent } from '@sluice/contracts';
import { createLogger } from '@sluice/telemetry';
import { freePort, startNats, type LocalNats } from '@sluice/bus/nats-server';
import { eventually } from '@sluice/bus/testing';
import type { FastifyInstance } from 'fastify';
import type { Db } from './db.js';
import { migrate } from './migrate.js';
import { buildApp } from './http.js';
import { LEDGER_POSITION, natsStreamReader, resetLedgerConsumer, startProjector, streamLastSeq, type Projector } from './consumer.js';
import { applyBatch, truncateProjections, type BatchResult } from './store.js';
import { asAdmin, readersConfig } from './auth-fixtures.js';
import { T0, cachedRequest, circuitOpened, completedRequest, failedRequest, priceOf, rejectedAtIngress, shedRequest, throttledRequest } from './fixtures.js';

export interface TestDb {
  db: Db;
  /** Closes and removes the database. */
  drop(): Promise<void>;
  /** Kills the database's connections, as a Postgres restart does (where there are connections to kill). */
  disconnect?(): Promise<void>;
}

const log = createLogger('ledger-test', 'silent');
const DAY = '?from=2025-06-01T00:00:00Z&to=2025-06-02T00:00:00Z';

/** The scenario's waits are long: batches retry with backoff while the database is away. */
const WAIT_MS = 20_000;

/** `canDisconnect`: the database has connections a test can drop (Postgres, not PGlite). */
export function ledgerScenario(label: string, openDb: () => Promise<TestDb>, opts: { canDisconnect: boolean }): void {
  describe(`ledger on ${label}`, () => {
    let dir: string;
    let nats: LocalNats;
    let bus: Bus;
    let testDb: TestDb;
    let db: Db;
    let app: FastifyInstance;
    let projector: Projector | undefined;
    const retries: unknown[] = [];
    const parked: number[] = [];
    const batches: BatchResult[] = [];

    const get = async (url: string) => {
      const res = await app.inject({ url, headers: asAdmin });
      return { status: res.statusCode, body: res.json<any>() };
    };
    const publishAll = async (events: AnyEvent[]) => {
      for (const e of events) await publishEvent(bus.js, e);
    };
    const start = async () => {
      projector = await startProjector(bus, {
        db,
        priceOf,
        log,
        batchSize: 4,
        lingerMs: 2,
        retryBaseMs: 20,
        retryMaxMs: 200,
        onRetry: (e) => retries.push(e),
        onBatch: (b) => batches.push(b),
        onParked: (seq) => parked.push(seq),
      });
    };
    const stop = async () => {
      await projector?.stop();
      projector = undefined;
    };
    const caughtUp = () =>
      eventually(
        async () => {
          const p = (await get('/v1/ledger/position')).body as { seq: number; lag: number; streamLastSeq: number };
          return p.lag === 0 && p.seq > 0 && p;
        },
        WAIT_MS,
        { what: 'the ledger to reach the end of the stream' },
      );
    /** Every message delivered and acked: nothing is left for a redelivery. */
    const allAcked = () =>
      eventually(
        async () => {
          const [c, last] = await Promise.all([bus.jsm.consumers.info(Topology.stream.name, Consumers.ledger.durable), streamLastSeq(bus.jsm)]);
          return c.num_ack_pending === 0 && c.num_pending === 0 && c.ack_floor.stream_seq === last;
        },
        WAIT_MS,
        { what: 'every message to be acked' },
      );

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sluice-ledger-'));
      nats = await startNats(join(dir, 'nats'), await freePort());
      bus = await connectBus(nats.url, 'ledger-test');
      await ensureTopology(bus);
      testDb = await openDb();
      db = testDb.db;
      await migrate(db);
      await migrate(db); // a second start finds nothing to do
      const config = readersConfig();
      app = buildApp({ db, positionName: LEDGER_POSITION, streamLastSeq: () => streamLastSeq(bus.jsm), now: () => T0 + 3_600_000, config: () => config });

      await publishAll([
        ...completedRequest({ id: 'r1', tenant: 'acme', at: T0 }, 'gpt-4o-mini', 1000, 500, 100),
        ...completedRequest({ id: 'r2', tenant: 'acme', at: T0 + 10, user: 'u2', feature: 'search' }, 'gpt-4o', 2000, 1000, 300),
        ...cachedRequest({ id: 'r3', tenant: 'acme', at: T0 + 20 }, 'gpt-4o-mini', 1000, 500, 5),
        ...completedRequest({ id: 'r4', tenant: 'globex', at: T0 + 30 }, 'gpt-4o-mini', 100, 50, 200),
        ...throttledRequest({ id: 'r5', tenant: 'globex', at: T0 + 40 }, 2),
        ...failedRequest({ id: 'r6', tenant: 'globex', at: T0 + 50 }, 90),
        ...shedRequest({ id: 'r7', tenant: 'globex', at: T0 + 60 }, 3),
        ...rejectedAtIngress({ id: 'r8', tenant: '_unknown', at: T0 + 70 }),
        circuitOpened(T0 + 80),
      ]);
      await bus.js.publish(Subjects.event('chat.completed', 'acme'), 'not json');
      await bus.js.publish(
        Subjects.event('chat.completed', 'acme'),
        JSON.stringify({ id: 'x', type: 'chat.completed', requestId: 'x', tenant: 'acme', service: 'invoker', at: T0, reason: '', data: {} }),
      );
      await start();
      await caughtUp();
    });

    afterAll(async () => {
      await stop();
      await app?.close();
      await testDb?.drop();
      await bus?.nc.close();
      await nats?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('reports costs per tenant and model, with exact sums', async () => {
      const { status, body } = await get(`/v1/costs${DAY}&groupBy=tenant,model`);
      expect(status).toBe(200);
      // the two malformed messages were skipped, and the position moved past them
      expect(batches.reduce((n, b) => n + b.malformed, 0)).toBe(2);
      expect(body.totals).toEqual({
        requests: 8,
        completed: 3,
        cacheHits: 1,
        inputTokens: 3100,
        outputTokens: 1550,
        costUsd: 0.015495,
        embeddingUsd: 0,
        savedUsd: 0.00045,
        // the fixtures' events carry no recorded price: all four bills used the config's
        configPriced: 4,
      });
      expect(body.groupBy).toEqual(['tenant', 'model']);
      expect(body.rows).toEqual([
        {
          tenant: '_unknown',
          model: null,
          requests: 1,
          completed: 0,
          cacheHits: 0,
          inputTokens: 0,
          outputTokens: 0,
          costUsd: 0,
          embeddingUsd: 0,
          savedUsd: 0,
          configPriced: 0,
        },
        {
          tenant: 'acme',
          model: 'gpt-4o',
          requests: 1,
          completed: 1,
          cacheHits: 0,
          inputTokens: 2000,
          outputTokens: 1000,
          costUsd: 0.015,
          embeddingUsd: 0,
          savedUsd: 0,
          configPriced: 1,
        },
        {
          tenant: 'acme',
          model: 'gpt-4o-mini',
          requests: 2,
          completed: 1,
          cacheHits: 1,
          inputTokens: 1000,
          outputTokens: 500,
          costUsd: 0.00045,
          embeddingUsd: 0,
          savedUsd: 0.00045,
          configPriced: 2,
        },
        {
          tenant: 'globex',
          model: 'gpt-4o-mini',
          requests: 1,
          completed: 1,
          cacheHits: 0,
          inputTokens: 100,
          outputTokens: 50,
          costUsd: 0.000045,
          embeddingUsd: 0,
          savedUsd: 0,
          configPriced: 1,
        },
        {
          tenant: 'globex',
          model: null,
          requests: 3,
          completed: 0,
          cacheHits: 0,
          inputTokens: 0,
          outputTokens: 0,
          costUsd: 0,
          embeddingUsd: 0,
          savedUsd: 0,
          configPriced: 0,
        },
      ]);
    });

    it('groups by day, user and feature and filters by tenant', async () => {
      const { body } = await get(`/v1/costs${DAY}&groupBy=day,user&tenant=acme`);
      expect(body.rows.map((r: any) => [r.day, r.user, r.requests, r.costUsd])).toEqual([
        ['2025-06-01', 'u1', 2, 0.00045],
        ['2025-06-01', 'u2', 1, 0.015],
      ]);
      const byFeature = (await get(`/v1/costs${DAY}&groupBy=feature&tenant=acme`)).body;
      expect(byFeature.rows.map((r: any) => [r.feature, r.requests])).toEqual([
        ['chat', 2],
        ['search', 1],
      ]);
      const outside = (await get('/v1/costs?from=2025-06-02T00:00:00Z&to=2025-06-03T00:00:00Z')).body;
      expect(outside.rows).toEqual([]);
      expect(outside.totals.requests).toBe(0);
    });

    it('reports SLOs: latency percentiles of answered requests and rates by outcome', async () => {
      const { status, body } = await get('/v1/slo?window=24h');
      expect(status).toBe(200);
      expect(body.totals).toMatchObject({
        requests: 8,
        answered: 4,
        // completed 100, 300, 200 and cached 5 ms
        latencyMs: { p50: 150, p95: 285, p99: 297 },
        errorRate: 0.25,
        availability: 0.75,
        cacheHitRate: 0.25,
        throttleRate: 0.125,
        shedRate: 0.125,
      });
      const byTenant = (await get('/v1/slo?window=24h&groupBy=tenant')).body;
      expect(byTenant.rows.map((r: any) => [r.tenant, r.requests, r.errorRate, r.cacheHitRate])).toEqual([
        ['_unknown', 1, null, null],
        ['acme', 3, 0, 0.333333],
        ['globex', 4, 0.5, 0],
      ]);
      expect((await get('/v1/slo?window=15m')).body.totals.requests).toBe(0);
    });

    it("shows a request's timeline in stream order", async () => {
      const { status, body } = await get('/v1/requests/r1');
      expect(status).toBe(200);
      expect(body).toMatchObject({
        requestId: 'r1',
        tenant: 'acme',
        outcome: 'completed',
        model: 'gpt-4o-mini',
        deployment: 'sim',
        latencyMs: 100,
        costUsd: 0.00045,
        inputTokens: 1000,
      });
      expect(body.timeline.map((e: any) => e.type)).toEqual([
        'chat.requested',
        'chat.admitted',
        'cache.missed',
        'chat.routed',
        'invoke.attempted',
        'chat.completed',
      ]);
      const seqs = body.timeline.map((e: any) => e.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      expect(body.timeline[5]).toMatchObject({ service: 'invoker', at: new Date(T0 + 100).toISOString(), reason: 'answered by sim' });
      expect((await get('/v1/requests/r8')).body).toMatchObject({
        outcome: 'rejected',
        errorCode: 'invalid_api_key',
        statusCode: 401,
        timeline: [{ type: 'chat.rejected' }],
      });
    });

    it('answers 404 and 400 in the catalogue shape', async () => {
      const missing = await get('/v1/requests/nope');
      expect(missing.status).toBe(404);
      expect(missing.body.error).toMatchObject({ code: 'not_found' });
      for (const [url, param] of [
        ['/v1/costs?from=not-a-date', 'from'],
        ['/v1/costs?groupBy=tenant,colour', 'groupBy'],
        ['/v1/slo?window=1y', 'window'],
        ['/v1/slo?groupBy=user', 'groupBy'],
      ] as const) {
        const r = await get(url);
        expect(r.status, url).toBe(400);
        expect(r.body.error.code).toBe('invalid_request');
        expect(r.body.error.message).toContain(param);
      }
      expect((await get('/healthz')).status).toBe(200);
    });

    it('counts each event once when every message is delivered again (acks lost in a crash)', async () => {
      await allAcked();
      await stop();
      const before = (await get(`/v1/costs${DAY}`)).body.totals;
      const eventsBefore = await db
        .selectFrom('events')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow();
      // as if the ledger had committed everything and died before a single ack
      const seen = await streamLastSeq(bus.jsm);
      await resetLedgerConsumer(bus.jsm);
      await publishAll(completedRequest({ id: 'r9', tenant: 'acme', at: T0 + 90 }, 'gpt-4o-mini', 1000, 0, 50));
      batches.length = 0;
      await start();
      await caughtUp();
      await allAcked();
      // everything was delivered again; only the new request's events were applied
      expect(batches.reduce((n, b) => n + b.applied, 0)).toBe(6);
      expect(batches.reduce((n, b) => n + b.skipped, 0)).toBeGreaterThanOrEqual(seen);
      const after = (await get(`/v1/costs${DAY}`)).body.totals;
      expect(after).toEqual({
        ...before,
        requests: before.requests + 1,
        completed: before.completed + 1,
        inputTokens: before.inputTokens + 1000,
        costUsd: 0.015645,
        configPriced: before.configPriced + 1,
      });
      const eventsAfter = await db
        .selectFrom('events')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow();
      expect(Number(eventsAfter.n)).toBe(Number(eventsBefore.n) + 6);
    });

    it('applies a batch once, and reads a gap before it from the stream', async () => {
      const stream = natsStreamReader(bus.jsm);
      const deps = { name: 'probe', priceOf, stream, log };
      const msgs = await Promise.all([5, 6, 7].map(async (s) => (await stream.read(s))!));
      const first = await applyBatch(db, msgs, deps);
      expect(first).toMatchObject({ position: 7, applied: 7, filled: 4, skipped: 0 });
      const again = await applyBatch(db, [...msgs, (await stream.read(1))!], deps);
      expect(again).toMatchObject({ position: 7, applied: 0, skipped: 4 });
    });

    it('retries a batch the database refused, without acking, and counts it once', async () => {
      const before = (await get(`/v1/costs${DAY}`)).body.totals;
      const retriesBefore = retries.length;
      await sql`alter table requests rename to requests_away`.execute(db);
      await publishAll(completedRequest({ id: 'r10', tenant: 'globex', at: T0 + 100 }, 'gpt-4o', 1000, 1000, 50));
      await eventually(() => retries.length > retriesBefore + 1, WAIT_MS, { what: 'a failed commit' });
      const stuck = (await get('/v1/ledger/position')).body;
      expect(stuck.lag).toBeGreaterThan(0);
      await sql`alter table requests_away rename to requests`.execute(db);
      await caughtUp();
      await allAcked();
      const after = (await get(`/v1/costs${DAY}`)).body.totals;
      expect(after.requests).toBe(before.requests + 1);
      expect(after.costUsd).toBeCloseTo(before.costUsd + 0.0125, 9);
      expect((await get('/v1/requests/r10')).body.timeline).toHaveLength(6);
    });

    it('replays into emptied projections when the consumer is ahead of the database (new or restored database)', async () => {
      await allAcked();
      const before = (await get(`/v1/costs${DAY}&groupBy=tenant,model`)).body;
      const cacheBefore = (await get(`/v1/cache${DAY}&groupBy=tenant,model,day,kind`)).body;
      await stop();
      await truncateProjections(db, LEDGER_POSITION);
      expect((await get(`/v1/costs${DAY}`)).body.totals.requests).toBe(0);
      await start();
      await caughtUp();
      expect((await get(`/v1/costs${DAY}&groupBy=tenant,model`)).body).toEqual(before);
      expect((await get(`/v1/cache${DAY}&groupBy=tenant,model,day,kind`)).body).toEqual(cacheBefore);
      expect(cacheBefore.totals).toMatchObject({ hits: 1, hitsByKind: { exact: 1, semantic: 0, coalesced: 0 }, tokensSaved: 1500 });
    });

    it('moves a consumer that acks each message to ack-all, starting after the database position', async () => {
      await allAcked();
      await stop();
      const before = (await get(`/v1/costs${DAY}`)).body.totals;
      // the consumer as a ledger before ack-all created it: explicit acks, from the start of the stream
      await bus.jsm.consumers.delete(Topology.stream.name, Consumers.ledger.durable);
      await bus.jsm.consumers.add(Topology.stream.name, {
        durable_name: Consumers.ledger.durable,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        filter_subject: Subjects.allEvents,
        max_ack_pending: 2000,
      });
      await publishAll(completedRequest({ id: 'r12', tenant: 'acme', at: T0 + 120 }, 'gpt-4o-mini', 1000, 0, 50));
      batches.length = 0;
      await start();
      await caughtUp();
      await allAcked();
      expect((await bus.jsm.consumers.info(Topology.stream.name, Consumers.ledger.durable)).config.ack_policy).toBe(AckPolicy.All);
      // recreated after the position, so nothing already projected was delivered again
      expect(batches.reduce((n, b) => n + b.skipped, 0)).toBe(0);
      expect(batches.reduce((n, b) => n + b.applied, 0)).toBe(6);
      const after = (await get(`/v1/costs${DAY}`)).body.totals;
      expect(after.requests).toBe(before.requests + 1);
      expect(after.costUsd).toBeCloseTo(before.costUsd + 0.00015, 9);
    });

    it('stores text exactly as the event carried it (rows travel to the database as JSON)', async () => {
      const odd = `it's "quoted" \\ back\\slash, tab\t, ünïcødé 🚀, {"json": [1]}`;
      const rejected = makeEvent(
        'chat.rejected',
        { requestId: 'r13', tenant: 'acme', service: 'ingress', at: T0 + 131, reason: odd },
        {
          code: 'invalid_api_key',
          status: 401,
          message: 'The API key is not valid for this tenant.',
          stage: 'ingress',
          model: odd,
          user: odd,
          receivedAt: T0 + 130,
        },
      ) as AnyEvent;
      await publishAll([rejected]);
      await caughtUp();
      const { body } = await get('/v1/requests/r13');
      expect(body).toMatchObject({ outcome: 'rejected', userId: odd, requestedModel: odd, latencyMs: 1, receivedAt: new Date(T0 + 130).toISOString() });
      expect(body.timeline).toMatchObject([{ type: 'chat.rejected', reason: odd, at: new Date(T0 + 131).toISOString(), data: { model: odd, user: odd } }]);
    });

    it('stores strings Postgres refuses (NUL, lone surrogates) as U+FFFD; the stream keeps them as sent', async () => {
      const hostile = 'a\u0000b\ud800c\udc00';
      const stored = 'a\uFFFDb\uFFFDc\uFFFD';
      const events = completedRequest({ id: 'r14', tenant: 'acme', at: T0 + 140, user: hostile, feature: `f${hostile}` }, 'gpt-4o-mini', 10, 10, 5);
      const rejected = makeEvent(
        'chat.rejected',
        { requestId: 'r15', tenant: 'acme', service: 'ingress', at: T0 + 151, reason: hostile },
        { code: 'invalid_request', status: 400, message: hostile, stage: 'ingress', model: hostile, user: hostile, receivedAt: T0 + 150 },
      ) as AnyEvent;
      await publishAll([...events, rejected]);
      await caughtUp();
      const r14 = (await get('/v1/requests/r14')).body;
      expect(r14).toMatchObject({ outcome: 'completed', userId: stored, feature: `f${stored}`, inputTokens: 10 });
      const r15 = (await get('/v1/requests/r15')).body;
      expect(r15).toMatchObject({ outcome: 'rejected', userId: stored, requestedModel: stored });
      expect(r15.timeline[0]).toMatchObject({ reason: stored, data: { message: stored } });
      // the stream still has the request as it was sent
      const stream = natsStreamReader(bus.jsm);
      const last = await streamLastSeq(bus.jsm);
      const raw = JSON.parse(new TextDecoder().decode((await stream.read(last))!.data));
      expect(raw.data.user).toBe(hostile);
    });

    it('parks an event it cannot project, moves on, and projects it when replayed after a fix', async () => {
      const before = (await get(`/v1/costs${DAY}`)).body.totals;
      const earlier = new Set((await listParked(bus, 'ledger')).map((d) => d.dlqSeq));
      parked.length = 0;
      // a rule the database enforces and the event breaks: the probe event still projects, so
      // the ledger can tell this event from a database that takes none
      await sql`alter table requests add constraint no_zed check (user_id is distinct from 'zed')`.execute(db);
      await publishAll([
        ...completedRequest({ id: 'r16', tenant: 'acme', at: T0 + 160, user: 'zed' }, 'gpt-4o-mini', 1000, 0, 5),
        ...completedRequest({ id: 'r17', tenant: 'acme', at: T0 + 170 }, 'gpt-4o-mini', 1000, 0, 5),
      ]);
      await eventually(() => parked.length >= 2, WAIT_MS, { what: 'the ledger to park r16' });
      await caughtUp();
      await allAcked();
      // r17 came after the bad event and was projected all the same
      expect((await get('/v1/requests/r17')).body).toMatchObject({ outcome: 'completed', inputTokens: 1000 });
      const dead = (await listParked(bus, 'ledger')).filter((d) => !earlier.has(d.dlqSeq));
      // both of r16's events that touch its row: the request and its completion
      expect(dead.map((d) => d.seq)).toEqual(parked);
      expect(dead[0]!.error).toContain('no_zed');
      const parkedTypes = dead.map((d) => JSON.parse(new TextDecoder().decode(d.data)).type);
      expect(parkedTypes).toEqual(['chat.requested', 'chat.completed']);
      // the request's timeline says so
      const r16 = (await get('/v1/requests/r16')).body;
      expect(r16.timeline.map((e: any) => e.type)).toContain('event.parked');

      await sql`alter table requests drop constraint no_zed`.execute(db);
      const replayed = await replayParked(
        bus,
        'ledger',
        dead.map((d) => d.dlqSeq),
      );
      expect(replayed.map((d) => d.seq)).toEqual(parked);
      await eventually(async () => (await get('/v1/requests/r16')).body.outcome === 'completed', WAIT_MS, { what: 'r16 to be projected' });
      expect((await listParked(bus, 'ledger')).map((d) => d.dlqSeq).sort()).toEqual([...earlier].sort());
      const after = (await get(`/v1/costs${DAY}`)).body.totals;
      expect(after.requests).toBe(before.requests + 2);
      expect(after.inputTokens).toBe(before.inputTokens + 2000);
    });

    // only Postgres has connections to drop; the PGlite suite does not declare this test
    if (opts.canDisconnect) {
      it('survives the database dropping its connections', async () => {
        if (!testDb.disconnect) throw new Error(`${label} test database cannot drop its connections`);
        const before = (await get(`/v1/costs${DAY}`)).body.totals;
        await testDb.disconnect();
        await publishAll(completedRequest({ id: 'r11', tenant: 'acme', at: T0 + 110 }, 'gpt-4o-mini', 0, 1000, 50));
        await caughtUp();
        await allAcked();
        const after = (await get(`/v1/costs${DAY}`)).body.totals;
        expect(after.requests).toBe(before.requests + 1);
        expect(after.costUsd).toBeCloseTo(before.costUsd + 0.0006, 9);
      });
    }
  });
}
