// The ledger's Sluice metrics against a real nats-server and Postgres (and PGlite, npm start's default): events published to the
// stream, projected, then scraped in Prometheus's text format and compared with exact values and
// with the ledger's own reports.
import { readFileSync } from 'node:fs';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { encodeJson, publishEvent, putDegrade } from '@sluice/bus';
import { eventually, minimalConfig, startTestBus, type TestBus } from '@sluice/bus/testing';
import { budgetsFor, Consumers, makeEvent, parseConfig, STATIC_FALLBACK, Topology, type AnyEvent } from '@sluice/contracts';
import { admitted, answer, chatRequest, completed, missed, requestContext } from '@sluice/contracts/testing';
import { meter, shutdownMetrics, startMetrics } from '@sluice/telemetry';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './http.js';
import type { Db } from './db.js';
import { migrate } from './migrate.js';
import { LEDGER_POSITION, resetLedgerConsumer, startProjector, streamLastSeq, type Projector } from './consumer.js';
import { readPosition } from './store.js';
import { openTestDb } from './db.fixtures.js';
import { costs } from './costs.js';
import { cacheReport } from './cache-report.js';
import { slo } from './slo.js';
import {
  T0,
  cachedRequest,
  coalescedRequest,
  completedRequest,
  priceOf,
  rejectedAtIngress,
  semanticHitRequest,
  shedRequest,
  throttledRequest,
} from './fixtures.js';
import { startLedgerMetrics, type LedgerMetrics } from './metrics.js';
import { followCommitted } from './metrics-follow.js';
import { READ_TYPES } from './metrics-events.js';

/** 0.01 USD a day for acme: one request of 1000 + 500 tokens of gpt-4o-mini (0.00045 USD) uses 0.045 of it. */
const config = minimalConfig([{ id: 'acme', budgets: [{ id: 'daily', scope: 'tenant', window: 'daily', limitUsd: 0.01 }] }, { id: 'globex' }]);
const NOW = T0 + 3_600_000;
const DAY = { from: new Date(T0 - 86_400_000), to: new Date(T0 + 86_400_000) };

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus's text format: one sample a line (comments skipped; the scope labels dropped). */
function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) if (!l[1]!.startsWith('otel_scope_')) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

describe.each(['PGlite', 'Postgres'] as const)('ledger metrics on %s', (kind) => {
  let env: TestBus;
  let opened: { db: Db; drop(): Promise<void> };
  let db: Db;
  let app: FastifyInstance;
  let metrics: LedgerMetrics;
  let projector: Projector | undefined;

  /** `GET /metrics` on the ledger's HTTP API, as Prometheus scrapes it (no key). */
  const scrapeText = async (): Promise<string> => {
    const res = await app.inject({ url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    return res.body;
  };
  const scrape = async (): Promise<Sample[]> => parseExposition(await scrapeText());
  /** Every sample of `name` whose labels include `labels`. */
  const find = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  /** The one sample of `name` with exactly these labels. */
  const value = (samples: Sample[], name: string, labels: Record<string, string>) => {
    const found = samples.filter((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === JSON.stringify(Object.entries(labels).sort()));
    expect(found, `${name}${JSON.stringify(labels)}`).toHaveLength(1);
    return found[0]!.value;
  };
  const sum = (samples: Sample[], name: string, labels: Record<string, string> = {}) => find(samples, name, labels).reduce((a, s) => a + s.value, 0);

  const round6 = (usd: number) => Math.round(usd * 1e6) / 1e6;
  /** What every request cost, summed exactly by the database (the ledger's costUsd before rounding). */
  const exactCost = async () =>
    Number(
      (
        await db
          .selectFrom('requests')
          .select(sql<string>`sum(cost_usd + embedding_usd)`.as('usd'))
          .executeTakeFirstOrThrow()
      ).usd,
    );

  const publishAll = async (events: AnyEvent[]) => {
    for (const e of events) await publishEvent(env.bus.js, e);
  };
  const start = async () => {
    projector = await startProjector(env.bus, {
      db,
      priceOf,
      budgetsOf: (subject, at) => budgetsFor(env.control.config(), subject, at),
      log: env.log,
      batchSize: 5,
      lingerMs: 2,
      onBatch: () => metrics.committed(),
    });
  };
  const caughtUp = () =>
    eventually(async () => (await readPosition(db, LEDGER_POSITION)) >= (await streamLastSeq(env.bus.jsm)), 20_000, {
      what: 'the ledger to reach the end of the stream',
    });

  /** acme's request counted against its daily budget: admitted with a reservation on the counter, then completed. */
  const budgeted = (id: string): AnyEvent[] => {
    const [ref] = budgetsFor(parseConfig(config), { tenant: 'acme' }, T0);
    const ctx = requestContext(chatRequest({ model: 'auto', user: 'u1', feature: 'chat' }), { receivedAt: T0, frontDoor: 'http' });
    return [
      admitted(id, 'acme', { ctx, budgets: { counters: [`${ref!.budgetKey}.${ref!.windowId}`], reservedNanos: 500_000 } }, { at: T0 + 1 }),
      completed(id, 'acme', { ctx, answer: answer('gpt-4o-mini', 1000, 500) }, { at: T0 + 50 }),
    ];
  };

  beforeAll(async () => {
    env = await startTestBus(config, { name: 'ledger-metrics' });
    opened = await openTestDb(kind, 'metrics');
    db = opened.db;
    await migrate(db);
    // the process's metrics SDK, as the preload starts it in a service
    expect(await startMetrics()).toBe(true);
    app = buildApp({ db, positionName: LEDGER_POSITION, config: () => env.control.config() });
    metrics = startLedgerMetrics({
      meter: meter('sluice.ledger'),
      db,
      positionName: LEDGER_POSITION,
      degrade: env.control.degrade,
      circuits: env.buckets.circuits,
      jsm: env.bus.jsm,
      log: env.log,
      now: () => NOW,
    });
    // counting starts at the first collection
    await scrape();
    await start();
  });
  afterAll(async () => {
    await projector?.stop();
    metrics?.stop();
    await app?.close();
    await shutdownMetrics();
    await opened?.drop();
    await env?.stop();
  });

  it('counts requests by outcome, tenant, model and lane, their durations and hops, exactly', async () => {
    await publishAll([
      ...completedRequest({ id: 'r1', tenant: 'acme', at: T0 }, 'gpt-4o-mini', 1000, 500, 100),
      ...completedRequest({ id: 'r2', tenant: 'acme', at: T0 + 10, feature: 'search' }, 'gpt-4o', 2000, 1000, 300),
      ...completedRequest({ id: 'r3', tenant: 'acme', at: T0 + 20 }, 'gpt-4o-mini', 100, 50, 200),
      ...throttledRequest({ id: 'r4', tenant: 'acme', at: T0 + 30 }, 2),
      ...shedRequest({ id: 'r5', tenant: 'globex', at: T0 + 40 }, 3),
      ...rejectedAtIngress({ id: 'r6', tenant: 'globex', at: T0 + 50 }),
    ]);
    await caughtUp();
    const s = await scrape();

    const acme = { sluice_tenant: 'acme', gen_ai_request_model: 'auto', sluice_lane: 'standard' };
    expect(value(s, 'sluice_requests_total', { ...acme, sluice_outcome: 'completed' })).toBe(3);
    expect(value(s, 'sluice_requests_total', { ...acme, sluice_outcome: 'throttled' })).toBe(1);
    expect(value(s, 'sluice_requests_total', { sluice_tenant: 'globex', gen_ai_request_model: 'auto', sluice_lane: 'standard', sluice_outcome: 'shed' })).toBe(
      1,
    );
    // refused at ingress before any lane: the model the client named, no lane
    expect(value(s, 'sluice_requests_total', { sluice_tenant: 'globex', gen_ai_request_model: 'gpt-4o', sluice_outcome: 'rejected' })).toBe(1);
    expect(sum(s, 'sluice_requests_total')).toBe(6);
    // the SLO's outcomes start at 0 with a label set's first request, so a first failure shows in rate()
    expect(value(s, 'sluice_requests_total', { ...acme, sluice_outcome: 'failed' })).toBe(0);
    expect(value(s, 'sluice_requests_total', { ...acme, sluice_outcome: 'degraded' })).toBe(0);

    // durations: ingress's receipt to the terminal event, in seconds
    const completedDuration = { sluice_outcome: 'completed', sluice_tenant: 'acme', sluice_lane: 'standard' };
    expect(value(s, 'sluice_request_duration_count', completedDuration)).toBe(3);
    expect(value(s, 'sluice_request_duration_sum', completedDuration)).toBeCloseTo(0.1 + 0.3 + 0.2, 9);
    expect(value(s, 'sluice_request_duration_bucket', { ...completedDuration, le: '0.25' })).toBe(2);

    // hops: each stage's input to its output (the fixtures stamp them 1 ms apart, the invoker at the end)
    expect(value(s, 'sluice_hop_duration_count', { sluice_hop: 'limiter' })).toBe(4); // 3 admitted + 1 throttled
    expect(value(s, 'sluice_hop_duration_sum', { sluice_hop: 'limiter' })).toBeCloseTo(0.001 * 3 + 0.002, 9);
    expect(value(s, 'sluice_hop_duration_count', { sluice_hop: 'cache' })).toBe(3);
    // the shed request was shed before the cache saw it (the fixture's router answered chat.requested): no router hop
    expect(value(s, 'sluice_hop_duration_count', { sluice_hop: 'router' })).toBe(3);
    expect(value(s, 'sluice_hop_duration_count', { sluice_hop: 'invoker' })).toBe(3);
    expect(value(s, 'sluice_hop_duration_sum', { sluice_hop: 'invoker' })).toBeCloseTo(0.097 + 0.297 + 0.197, 9);

    expect(value(s, 'sluice_throttles_total', { sluice_layer: 'tenant', sluice_tenant: 'acme' })).toBe(1);
  });

  it('reports cost, cache hits and savings equal to the ledger totals', async () => {
    await publishAll([
      ...cachedRequest({ id: 'c1', tenant: 'acme', at: T0 + 100 }, 'gpt-4o-mini', 1000, 500, 5),
      ...semanticHitRequest({ id: 'c2', tenant: 'acme', at: T0 + 110 }, 'gpt-4o', 2000, 1000, 7, { matched: 'r2', similarity: 0.97, embeddingTokens: 40 }),
      ...coalescedRequest({ id: 'c3', tenant: 'globex', at: T0 + 120 }, 'gpt-4o-mini', 100, 50, 30, 'r3'),
    ]);
    await caughtUp();
    const s = await scrape();

    // the ledger's report rounds to 1e-6 USD; its exact sums are in the database
    const ledger = await costs(db, { ...DAY, groupBy: ['tenant'] });
    expect(round6(sum(s, 'sluice_cost_total'))).toBe(ledger.totals.costUsd);
    expect(sum(s, 'sluice_cost_total')).toBeCloseTo(await exactCost(), 15);
    for (const tenant of ['acme', 'globex']) {
      expect(round6(sum(s, 'sluice_cost_total', { sluice_tenant: tenant }))).toBe(ledger.rows.find((r) => r.tenant === tenant)!.costUsd);
    }
    // r2's answer: 2000 + 1000 tokens at 2.5 and 10 USD / M
    expect(
      value(s, 'sluice_cost_total', { sluice_tenant: 'acme', gen_ai_request_model: 'auto', gen_ai_response_model: 'gpt-4o', sluice_feature: 'search' }),
    ).toBeCloseTo(0.015, 15);
    // the semantic hit's embedding: 40 tokens at 0.02 USD / M
    expect(
      value(s, 'sluice_cost_total', {
        sluice_tenant: 'acme',
        gen_ai_request_model: 'auto',
        gen_ai_response_model: 'text-embedding-3-small',
        sluice_feature: 'chat',
      }),
    ).toBeCloseTo(0.0000008, 12);

    const cache = await cacheReport(db, { ...DAY, groupBy: ['kind'] });
    expect(value(s, 'sluice_cache_hits_total', { sluice_cache_kind: 'exact', sluice_tenant: 'acme' })).toBe(1);
    expect(value(s, 'sluice_cache_hits_total', { sluice_cache_kind: 'semantic', sluice_tenant: 'acme' })).toBe(1);
    expect(value(s, 'sluice_cache_hits_total', { sluice_cache_kind: 'coalesced', sluice_tenant: 'globex' })).toBe(1);
    expect(round6(sum(s, 'sluice_cache_savings_total'))).toBe(cache.totals.savedUsd);
    expect(value(s, 'sluice_requests_total', { sluice_tenant: 'acme', gen_ai_request_model: 'auto', sluice_lane: 'standard', sluice_outcome: 'cached' })).toBe(
      2,
    );
    // the cache answered c1 and c2 (hops), c3 waited for its leader (no hop)
    expect(value(s, 'sluice_hop_duration_count', { sluice_hop: 'cache' })).toBe(3 + 2);
  });

  it('counts a redelivered event once', async () => {
    const before = await scrape();
    // the durable is recreated: the whole stream is delivered again, and the projection skips it
    await projector!.stop();
    await resetLedgerConsumer(env.bus.jsm);
    await start();
    await publishAll(completedRequest({ id: 'r7', tenant: 'acme', at: T0 + 200 }, 'gpt-4o-mini', 10, 5, 50));
    await caughtUp();
    const after = await scrape();
    const completedAcme = { sluice_tenant: 'acme', gen_ai_request_model: 'auto', sluice_lane: 'standard', sluice_outcome: 'completed' };
    expect(value(after, 'sluice_requests_total', completedAcme)).toBe(value(before, 'sluice_requests_total', completedAcme) + 1);
    expect(sum(after, 'sluice_requests_total')).toBe(sum(before, 'sluice_requests_total') + 1);
    expect(sum(after, 'sluice_cost_total')).toBeCloseTo(await exactCost(), 15);
  });

  it('shows budget use, circuits, the degrade level and each durable backlog', async () => {
    await publishAll(budgeted('b1'));
    await env.buckets.circuits.put('east', encodeJson({ state: 'open', failures: 5, openedAt: NOW }));
    await env.buckets.circuits.put('west', encodeJson({ state: 'half-open', failures: 0 }));
    // records the invokers would not read either: taken as closed
    await env.buckets.circuits.put('north', encodeJson({ state: 'constructor' }));
    await env.buckets.circuits.put('south', new TextEncoder().encode('not json'));
    await putDegrade(env.buckets.control, { level: 2, since: NOW, reason: 'test' });
    // a durable nobody pulls from: every completion in the stream is pending on it
    await env.bus.jsm.consumers.add(Topology.stream.name, {
      durable_name: 'metrics-test-idle',
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: 'sluice.evt.chat.completed.>',
    });
    await caughtUp();

    const s = await eventually(
      async () => {
        const s = await scrape();
        return find(s, 'sluice_circuit_state').length === 4 && find(s, 'sluice_degrade_level', {})[0]?.value === 2 && s;
      },
      10_000,
      { what: 'the circuits and degrade level to be watched' },
    );
    expect(value(s, 'sluice_circuit_state', { sluice_deployment: 'east' })).toBe(2);
    expect(value(s, 'sluice_circuit_state', { sluice_deployment: 'west' })).toBe(1);
    expect(value(s, 'sluice_circuit_state', { sluice_deployment: 'north' })).toBe(0);
    expect(value(s, 'sluice_circuit_state', { sluice_deployment: 'south' })).toBe(0);
    expect(value(s, 'sluice_degrade_level', {})).toBe(2);
    // 0.00045 USD of 0.01
    expect(value(s, 'sluice_budget_utilization', { sluice_tenant: 'acme', sluice_budget: 'daily' })).toBeCloseTo(0.045, 12);

    const idle = { messaging_consumer_group_name: 'metrics-test-idle', messaging_destination_name: Topology.stream.name };
    expect(value(s, 'sluice_consumer_pending', { ...idle, sluice_state: 'pending' })).toBe(5); // r1, r2, r3, r7, b1
    expect(value(s, 'sluice_consumer_pending', { ...idle, sluice_state: 'ack_pending' })).toBe(0);
    const ledger = { messaging_consumer_group_name: Consumers.ledger.durable, messaging_destination_name: Topology.stream.name, sluice_state: 'pending' };
    expect(value(s, 'sluice_consumer_pending', ledger)).toBe(0);

    // a circuit closes: its gauge reads 0
    await env.buckets.circuits.put('east', encodeJson({ state: 'closed', failures: 0 }));
    await eventually(async () => value(await scrape(), 'sluice_circuit_state', { sluice_deployment: 'east' }) === 0, 10_000, { what: 'the closed circuit' });
  });

  it("counts the router's static answer as degraded, as the ledger's SLO does", async () => {
    const routerHops = value(await scrape(), 'sluice_hop_duration_count', { sluice_hop: 'router' });
    const ctx = requestContext(chatRequest({ model: 'auto', user: 'u1', feature: 'chat' }), { receivedAt: T0 + 300, frontDoor: 'http' });
    await publishAll([
      admitted('s1', 'globex', { ctx }, { at: T0 + 301 }),
      missed('s1', 'globex', { ctx }, { at: T0 + 302 }),
      makeEvent(
        'chat.completed',
        { requestId: 's1', tenant: 'globex', service: 'router', at: T0 + 304, reason: 'degrade level 3: static answer' },
        { ctx, answer: answer(STATIC_FALLBACK, 0, 0), deployment: STATIC_FALLBACK, attempts: 0, upstreamLatencyMs: 0 },
      ),
    ]);
    await caughtUp();
    const s = await scrape();
    const globex = { sluice_tenant: 'globex', gen_ai_request_model: 'auto', sluice_lane: 'standard' };
    expect(value(s, 'sluice_requests_total', { ...globex, sluice_outcome: 'degraded' })).toBe(1);
    // not a success: completed stays at the 0 its series started with
    expect(value(s, 'sluice_requests_total', { ...globex, sluice_outcome: 'completed' })).toBe(0);
    const ledger = await slo(db, { window: 'test', ...DAY, tenant: 'globex' });
    expect(ledger.totals.outcomes.degraded).toBe(1);
    // the router answered the miss itself, in 2 ms
    expect(value(s, 'sluice_hop_duration_count', { sluice_hop: 'router' })).toBe(routerHops + 1);
    expect(value(s, 'sluice_hop_duration_bucket', { sluice_hop: 'router', le: '0.001' })).toBe(routerHops);
  });

  it("serves every metric of docs/metrics.md's Sluice table with its kind and unit", async () => {
    const doc = readFileSync(new URL('../../../docs/metrics.md', import.meta.url), 'utf8');
    const table = doc.slice(doc.indexOf('### Sluice'));
    const rows = [...table.matchAll(/^\| `([\w.]+)` \| `(\w+)` \| (\w+) \| `([^`]+)` \|/gm)].map((m) => ({ prometheus: m[2]!, kind: m[3]!, unit: m[4]! }));
    expect(rows).toHaveLength(11);
    const text = await scrapeText();
    for (const r of rows) {
      expect(text).toContain(`# TYPE ${r.prometheus} ${r.kind}`);
      expect(text).toContain(`# UNIT ${r.prometheus} ${r.unit}`);
    }
  });

  it('reads what was committed page by page, each event once, in order', async () => {
    const seqs: number[] = [];
    const follower = followCommitted(db, LEDGER_POSITION, 0, (e) => seqs.push(e.seq), 3);
    // two calls at once: the second waits for the first and finds nothing new
    await Promise.all([follower.sync(), follower.sync()]);
    const measured = await db
      .selectFrom('events')
      .select('seq')
      .where('type', 'in', [...READ_TYPES])
      .orderBy('seq')
      .execute();
    expect(measured.length).toBeGreaterThan(10);
    expect(seqs).toEqual(measured.map((r) => Number(r.seq)));
    expect(follower.cursor()).toBe(await readPosition(db, LEDGER_POSITION));
  });
});
