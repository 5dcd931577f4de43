// `npm run ledger -- rebuild` after a price change, on real NATS and Postgres: the ledger projects a
// day of answers of every kind, the config's prices then triple, the rebuild CLI empties the
// projections and the running ledger projects the stream again. Every row, timeline entry and
// report must come out identical (each answer is billed at the price recorded on its event), and
// the answers after the change are billed at the new prices.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { connectBus, ensureTopology, publishEvent, type Bus } from '@sluice/bus';
import { freePort, startNats, type LocalNats } from '@sluice/bus/nats-server';
import { eventually } from '@sluice/bus/testing';
import { billedPrice, budgetsFor, makeEvent, STATIC_FALLBACK, STATIC_PRICE, type AnyEvent, type BilledPrice, type ModelPrice } from '@sluice/contracts';
import { chatRequest, requestContext } from '@sluice/contracts/testing';
import { createLogger } from '@sluice/telemetry';
import { asAdmin, readersConfig } from './auth-fixtures.js';
import { LEDGER_POSITION, startProjector, streamLastSeq, type Projector } from './consumer.js';
import { createTestDatabase, pgAdmin } from './db.fixtures.js';
import { createDb, type Db } from './db.js';
import { T0, cachedRequest, coalescedRequest, completedRequest, embeddingUse, semanticHitRequest } from './fixtures.js';
import { buildApp } from './http.js';
import { migrate } from './migrate.js';
import { readPosition } from './store.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../../..');
const log = createLogger('ledger-rebuild-test', 'silent');
const DAY = 'from=2025-06-01T00:00:00Z&to=2025-06-02T00:00:00Z';
const WAIT_MS = 20_000;

type Models = Record<string, { price: ModelPrice }>;
const BEFORE: Models = {
  'gpt-4o-mini': { price: { inputPerMTok: 0.15, outputPerMTok: 0.6 } },
  'gpt-4o': { price: { inputPerMTok: 2.5, outputPerMTok: 10, batchInputPerMTok: 1.25, batchOutputPerMTok: 5 } },
  'text-embedding-3-small': { price: { inputPerMTok: 0.02, outputPerMTok: 0 } },
};
/** The config after the change: every price tripled. */
const AFTER: Models = Object.fromEntries(
  Object.entries(BEFORE).map(([m, { price }]) => [
    m,
    { price: Object.fromEntries(Object.entries(price).map(([k, v]) => [k, v * 3])) as unknown as ModelPrice },
  ]),
);

// acme's daily budget: its answers' spend (0.0227 USD) crosses every default threshold (alerts in the outbox)
const config = readersConfig({ acme: { budgets: [{ id: 'daily', scope: 'tenant', window: 'daily', limitUsd: 0.02 }] } });
const [budget] = budgetsFor(config, { tenant: 'acme' }, T0);
const counter = `${budget!.budgetKey}.${budget!.windowId}`;

/** acme's admissions reserve on its budget, as the limiter's would. */
const reserving = (e: AnyEvent): AnyEvent =>
  e.type === 'chat.admitted' && e.tenant === 'acme' ? { ...e, data: { ...e.data, budgets: { counters: [counter], reservedNanos: 5_000 } } } : e;

/** `events` with their terminal event (the last) carrying `price`, as the stage that answered records it. */
function stamped(events: AnyEvent[], price: BilledPrice, change: Record<string, unknown> = {}): AnyEvent[] {
  const end = events[events.length - 1]!;
  return [...events.slice(0, -1), { ...end, data: { ...end.data, ...change, price } } as AnyEvent];
}

/** A day of answers of every kind, each priced under `models` as the answering stage would price it. */
function answers(models: Models): AnyEvent[] {
  const price = (m: string, batch = false) => billedPrice(models, m, batch);
  const r = (id: string, at: number, over: { user?: string; feature?: string } = {}) => ({ id, tenant: id.startsWith('g') ? 'globex' : 'acme', at, ...over });
  const batchLine = completedRequest(r('a3', T0 + 20), 'gpt-4o', 3000, 700, 900);
  const line = batchLine[batchLine.length - 1] as AnyEvent & { data: { ctx: ReturnType<typeof requestContext> } };
  const hit = semanticHitRequest(r('a6', T0 + 50), 'gpt-4o-mini', 800, 200, 6, { matched: 'a1', similarity: 0.96, embeddingTokens: 900 });
  const hitEnd = hit[hit.length - 1] as AnyEvent & { data: { embedding: ReturnType<typeof embeddingUse> } };
  const all: AnyEvent[] = [
    ...stamped(completedRequest(r('a1', T0), 'gpt-4o-mini', 1000, 500, 120), price('gpt-4o-mini')),
    ...stamped(completedRequest(r('a2', T0 + 10, { user: 'u2', feature: 'search' }), 'gpt-4o', 2000, 1000, 300), price('gpt-4o')),
    // a batch line: the model's batch price
    ...stamped(batchLine, price('gpt-4o', true), { ctx: { ...line.data.ctx, batch: { id: 'batch_1', customId: 'line-1' } } }),
    ...stamped(cachedRequest(r('a4', T0 + 30), 'gpt-4o', 1500, 300, 4), price('gpt-4o')),
    ...stamped(coalescedRequest(r('a5', T0 + 40), 'gpt-4o-mini', 1000, 500, 80, 'a1'), price('gpt-4o-mini')),
    ...stamped(hit, price('gpt-4o-mini'), { embedding: { ...hitEnd.data.embedding, price: price('text-embedding-3-small') } }),
    // degrade level 3: the router's static answer
    ...stamped(completedRequest(r('g7', T0 + 60), STATIC_FALLBACK, 0, 0, 2), STATIC_PRICE, { deployment: STATIC_FALLBACK, attempts: 0 }),
    makeEvent(
      'chat.cancelled',
      { requestId: 'g8', tenant: 'globex', service: 'invoker', at: T0 + 400, reason: 'the client left' },
      {
        ctx: requestContext(chatRequest({ model: 'auto', user: 'u1', feature: 'chat' }), { frontDoor: 'http', receivedAt: T0 + 70 }),
        model: 'gpt-4o',
        deployment: 'sim',
        attempts: 1,
        usage: { prompt_tokens: 1200, completion_tokens: 40, total_tokens: 1240 },
        counted: true,
        price: price('gpt-4o'),
      },
    ),
  ];
  return all.map(reserving);
}

describe('npm run ledger -- rebuild after a price change', () => {
  let dir: string;
  let nats: LocalNats;
  let bus: Bus;
  let db: Db;
  let dbName: string;
  let dbUrl: string;
  let app: FastifyInstance;
  let projector: Projector;
  let models = BEFORE;

  const get = async (url: string) => {
    const res = await app.inject({ url, headers: asAdmin });
    expect(res.statusCode).toBe(200);
    return res.json<Record<string, unknown>>();
  };
  /** The projection has reached the stream's last event. */
  const caughtUp = async () => {
    const last = await streamLastSeq(bus.jsm);
    await eventually(async () => (await readPosition(db, LEDGER_POSITION)) === last, WAIT_MS, { what: `the ledger to project up to ${last}` });
  };
  /** Everything the ledger shows: its tables and its reports. */
  const snapshot = async () => ({
    requests: await db.selectFrom('requests').selectAll().orderBy('request_id').execute(),
    events: await db.selectFrom('events').selectAll().orderBy('seq').execute(),
    reservations: await db.selectFrom('budget_reservations').selectAll().orderBy('request_id').execute(),
    counters: await db.selectFrom('budget_counters').selectAll().orderBy('counter').execute(),
    alerts: await db.selectFrom('budget_alerts').selectAll().orderBy('alert_id').execute(),
    costs: await get(`/v1/costs?${DAY}&groupBy=tenant,model,feature`),
    cache: await get(`/v1/cache?${DAY}&groupBy=tenant,model,kind`),
    slo: await get('/v1/slo?window=24h&groupBy=tenant'),
  });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-ledger-rebuild-'));
    nats = await startNats(join(dir, 'nats'), await freePort());
    bus = await connectBus(nats.url, 'ledger-rebuild-test');
    await ensureTopology(bus);
    ({ name: dbName, url: dbUrl } = await createTestDatabase('rebuild'));
    db = createDb({ databaseUrl: dbUrl, log });
    await migrate(db);
    app = buildApp({ db, positionName: LEDGER_POSITION, streamLastSeq: () => streamLastSeq(bus.jsm), now: () => T0 + 3_600_000, config: () => config });
    // the live config's prices: what an event without a recorded price is billed at
    projector = await startProjector(bus, {
      db,
      log,
      priceOf: (m) => models[m]?.price,
      budgetsOf: (subject, at) => budgetsFor(config, subject, at),
      batchSize: 16,
      lingerMs: 2,
    });
    for (const e of answers(BEFORE)) await publishEvent(bus.js, e);
    await caughtUp();
  }, 60_000);

  afterAll(async () => {
    await projector?.stop();
    await app?.close();
    await db?.destroy();
    if (dbName) await pgAdmin(`drop database if exists ${dbName} with (force)`);
    await bus?.nc.close();
    await nats?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('projects the same rows, timeline and reports as before, though every price tripled', async () => {
    const before = await snapshot();
    expect(before.requests).toHaveLength(8);
    expect(before.costs.totals).toMatchObject({ requests: 8, configPriced: 0 });
    expect(before.counters).toHaveLength(1);
    expect(before.reservations.length).toBeGreaterThan(0);
    expect(before.alerts.map((a) => Number(a.threshold)).sort((x, y) => x - y)).toEqual([0.5, 0.75, 0.9, 1]);
    // the static answer is a degraded answer in the SLOs, not a success
    const globex = (before.slo.rows as Array<{ tenant: string; outcomes: Record<string, number> }>).find((r) => r.tenant === 'globex');
    expect(globex?.outcomes).toMatchObject({ degraded: 1, completed: 0 });
    expect(before.slo.totals).toMatchObject({ outcomes: { completed: 3, degraded: 1, cached: 3 }, availability: 0.75, degradedRate: 0.25 });

    models = AFTER;
    const cli = await run(process.execPath, ['--conditions=sluice-src', '--import', 'tsx', 'services/ledger/src/rebuild.ts', 'rebuild'], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: dbUrl, NATS_URL: nats.url, SLUICE_LOG_LEVEL: 'warn' },
    });
    expect(cli.stderr).toBe('');
    // the CLI emptied the projections; the running ledger projects the stream again from its first event
    await caughtUp();
    expect(await snapshot()).toEqual(before);
  }, 60_000);

  it('bills answers after the change at the new prices, and an event without a recorded price at the live config', async () => {
    const before = (await get(`/v1/costs?${DAY}`)).totals as Record<string, number>;
    const at = T0 + 1_000;
    const fresh = stamped(completedRequest({ id: 'a9', tenant: 'acme', at }, 'gpt-4o-mini', 1000, 500, 100), billedPrice(AFTER, 'gpt-4o-mini', false));
    const unpriced = completedRequest({ id: 'a10', tenant: 'acme', at: at + 10 }, 'gpt-4o', 1000, 0, 100);
    for (const e of [...fresh, ...unpriced]) await publishEvent(bus.js, e);
    await caughtUp();
    const rows = await db
      .selectFrom('requests')
      .select(['request_id', 'cost_usd', 'price_source'])
      .where('request_id', 'in', ['a9', 'a10'])
      .orderBy('request_id')
      .execute();
    // 1000 × 0.45 + 500 × 1.8 per million; 1000 × 7.5 per million
    expect(rows.map((r) => [r.request_id, Number(r.cost_usd), r.price_source])).toEqual([
      ['a10', 0.0075, 'config'],
      ['a9', 0.00135, 'event'],
    ]);
    const after = (await get(`/v1/costs?${DAY}`)).totals as Record<string, number>;
    expect(after.configPriced).toBe(before.configPriced! + 1);
    expect(after.costUsd).toBeCloseTo(before.costUsd! + 0.0075 + 0.00135, 5);
  }, 30_000);

  it('refuses an unknown command with its usage and exit status 2', async () => {
    const failed = await run(process.execPath, ['--conditions=sluice-src', '--import', 'tsx', 'services/ledger/src/rebuild.ts', 'rebiuld'], {
      cwd: ROOT,
    }).catch((e: { code: number; stderr: string }) => e);
    expect(failed).toMatchObject({ code: 2, stderr: 'usage: npm run ledger -- rebuild\n' });
  }, 30_000);
});
