// GET /v1/cache and the cache's bill against PGlite and Postgres: events of every cached kind
// projected through applyBatch (the projector's own transaction), the report read over HTTP,
// embedding spend in /v1/costs and in budget counters, the same numbers after a replay, and the
// migration's marking of hits projected before it.
import { Migrator, sql, type Migration } from 'kysely';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeEvent, type AnyEvent } from '@sluice/contracts';
import { missed } from '@sluice/contracts/testing';
import { createLogger } from '@sluice/telemetry';
import type { Db } from './db.js';
import { migrate } from './migrate.js';
import * as init from './migrations/20251121000000_init.js';
import * as endpointsCancelled from './migrations/20261130000000_endpoints_cancelled.js';
import * as budgets from './migrations/20261201000000_budgets.js';
import { buildApp } from './http.js';
import { applyBatch, truncateProjections, type RawEvent, type StreamReader } from './store.js';
import { asAdmin, asReader, readersConfig } from './auth-fixtures.js';
import { T0, cachedRequest, coalescedRequest, completedRequest, embeddingUse, failedRequest, priceOf, semanticHitRequest } from './fixtures.js';
import { openTestDb } from './db.fixtures.js';

const log = createLogger('ledger-cache-test', 'silent');
const DAY_MS = 86_400_000;
const RANGE = '?from=2025-06-01T00:00:00Z&to=2025-06-03T00:00:00Z';
const COUNTER = 'acme.daily.2025-06-01';
const POSITION = 'cache-test';
// every batch here starts where the last ended: nothing is ever read from the stream
const noGaps: StreamReader = {
  firstSeq: async () => 1,
  read: async (seq) => {
    throw new Error(`the test left a gap at ${seq}`);
  },
};

const openDb = (kind: 'PGlite' | 'Postgres') => openTestDb(kind, 'cache');

/** The request's chat.admitted with a reservation on the acme daily counter. */
const reserving = (events: AnyEvent[]): AnyEvent[] =>
  events.map((e) => (e.type === 'chat.admitted' ? { ...e, data: { ...e.data, budgets: { counters: [COUNTER], reservedNanos: 1000 } } } : e));

const day1 = (id: string, tenant = 'acme', offset = 0) => ({ id, tenant, at: T0 + offset });

/** A request that paid for an embedding, found nothing, and failed upstream: spend with no answer. */
function failedAfterEmbedding(): AnyEvent[] {
  const events = failedRequest(day1('f1', 'acme', 60), 90);
  const admittedEvent = events[1]!;
  if (admittedEvent.type !== 'chat.admitted') throw new Error('failedRequest no longer starts requested, admitted');
  const ctx = admittedEvent.data.ctx;
  return [...events.slice(0, 2), missed('f1', 'acme', { ctx, embedding: embeddingUse(500) }, { at: T0 + 63 }), ...events.slice(2)];
}

const seeded: AnyEvent[] = [
  ...cachedRequest(day1('c1', 'acme', 0), 'gpt-4o-mini', 1000, 500, 2),
  ...reserving(semanticHitRequest(day1('s1', 'acme', 10), 'gpt-4o-mini', 1000, 500, 9, { matched: 'm1', similarity: 0.96, embeddingTokens: 50 })),
  ...coalescedRequest(day1('co1', 'acme', 20), 'gpt-4o-mini', 1000, 500, 150, 'm1'),
  ...reserving(completedRequest(day1('m1', 'acme', 30), 'gpt-4o-mini', 1000, 500, 200, embeddingUse(2000))),
  ...failedAfterEmbedding(),
  ...completedRequest({ id: 'p1', tenant: 'acme', at: T0 + DAY_MS }, 'gpt-4o', 2000, 1000, 300),
  ...cachedRequest(day1('b1', 'beta', 70), 'gpt-4o', 100, 10, 2),
];

const raw = (events: AnyEvent[], firstSeq = 1): RawEvent[] => events.map((e, i) => ({ seq: firstSeq + i, data: new TextEncoder().encode(JSON.stringify(e)) }));

describe.each(['PGlite', 'Postgres'] as const)('GET /v1/cache on %s', (kind) => {
  let opened: { db: Db; drop(): Promise<void> };
  let db: Db;
  let app: FastifyInstance;

  const get = async (url: string, headers: Record<string, string> = asAdmin) => {
    const res = await app.inject({ url, headers });
    return { status: res.statusCode, body: res.json<any>() };
  };
  const project = async (events: RawEvent[], batch: number) => {
    for (let i = 0; i < events.length; i += batch) await applyBatch(db, events.slice(i, i + batch), { name: POSITION, priceOf, stream: noGaps, log });
  };
  const counter = async () =>
    db
      .selectFrom('budget_counters')
      .select([sql<string>`spent_usd::text`.as('spent'), 'requests'])
      .where('counter', '=', COUNTER)
      .executeTakeFirst();

  beforeAll(async () => {
    opened = await openDb(kind);
    db = opened.db;
    await migrate(db);
    const config = readersConfig();
    app = buildApp({ db, positionName: POSITION, now: () => T0 + 2 * DAY_MS, config: () => config });
    await project(raw(seeded), 7);
  });
  afterAll(async () => {
    await app?.close();
    await opened?.drop();
  });

  it('reports hits, tokens and USD saved by tenant, model, day and kind, net of the embedding calls', async () => {
    const { status, body } = await get(`/v1/cache${RANGE}&groupBy=tenant,model,day,kind`);
    expect(status).toBe(200);
    expect(body.groupBy).toEqual(['tenant', 'model', 'day', 'kind']);
    const none = { exact: 0, semantic: 0, coalesced: 0 };
    const row = (dims: object, f: object) => ({ ...dims, hitsByKind: none, tokensSaved: 0, savedUsd: 0, embeddingTokens: 0, embeddingUsd: 0, ...f });
    expect(body.rows).toEqual([
      row({ tenant: 'acme', model: 'gpt-4o', day: '2025-06-02', kind: 'miss' }, { requests: 1, hits: 0, hitRate: 0, netSavedUsd: 0 }),
      row(
        { tenant: 'acme', model: 'gpt-4o-mini', day: '2025-06-01', kind: 'coalesced' },
        { requests: 1, hits: 1, hitsByKind: { ...none, coalesced: 1 }, hitRate: 1, tokensSaved: 1500, savedUsd: 0.00045, netSavedUsd: 0.00045 },
      ),
      row(
        { tenant: 'acme', model: 'gpt-4o-mini', day: '2025-06-01', kind: 'exact' },
        { requests: 1, hits: 1, hitsByKind: { ...none, exact: 1 }, hitRate: 1, tokensSaved: 1500, savedUsd: 0.00045, netSavedUsd: 0.00045 },
      ),
      // the embedding a miss paid for is the semantic cache's cost
      row(
        { tenant: 'acme', model: 'gpt-4o-mini', day: '2025-06-01', kind: 'miss' },
        { requests: 1, hits: 0, hitRate: 0, embeddingTokens: 2000, embeddingUsd: 0.00004, netSavedUsd: -0.00004 },
      ),
      row(
        { tenant: 'acme', model: 'gpt-4o-mini', day: '2025-06-01', kind: 'semantic' },
        {
          requests: 1,
          hits: 1,
          hitsByKind: { ...none, semantic: 1 },
          hitRate: 1,
          tokensSaved: 1500,
          savedUsd: 0.00045,
          embeddingTokens: 50,
          embeddingUsd: 0.000001,
          netSavedUsd: 0.000449,
        },
      ),
      // a request that paid for an embedding and got no answer: not a request answered, its spend counted
      row(
        { tenant: 'acme', model: null, day: '2025-06-01', kind: 'miss' },
        { requests: 0, hits: 0, hitRate: null, embeddingTokens: 500, embeddingUsd: 0.00001, netSavedUsd: -0.00001 },
      ),
      row(
        { tenant: 'beta', model: 'gpt-4o', day: '2025-06-01', kind: 'exact' },
        { requests: 1, hits: 1, hitsByKind: { ...none, exact: 1 }, hitRate: 1, tokensSaved: 110, savedUsd: 0.00035, netSavedUsd: 0.00035 },
      ),
    ]);
    expect(body.totals).toEqual({
      requests: 6,
      hits: 4,
      hitsByKind: { exact: 2, semantic: 1, coalesced: 1 },
      hitRate: 0.666667,
      tokensSaved: 4610,
      savedUsd: 0.0017,
      embeddingTokens: 2550,
      embeddingUsd: 0.000051,
      netSavedUsd: 0.001649,
    });
  });

  it("defaults to tenant, model and day, and shows a tenant's read key its own tenant only", async () => {
    const { status, body } = await get(`/v1/cache${RANGE}`, asReader('acme'));
    expect(status).toBe(200);
    expect(body.groupBy).toEqual(['tenant', 'model', 'day']);
    expect(body.rows.map((r: any) => [r.tenant, r.model, r.day, r.requests, r.hits])).toEqual([
      ['acme', 'gpt-4o', '2025-06-02', 1, 0],
      ['acme', 'gpt-4o-mini', '2025-06-01', 4, 3],
      ['acme', null, '2025-06-01', 0, 0],
    ]);
    expect(body.rows[1]).toMatchObject({ hitsByKind: { exact: 1, semantic: 1, coalesced: 1 }, hitRate: 0.75, tokensSaved: 4500, netSavedUsd: 0.001309 });
    expect(body.totals).toMatchObject({ requests: 5, hits: 3, embeddingUsd: 0.000051 });
    expect((await get(`/v1/cache${RANGE}&tenant=beta`, asReader('acme'))).status).toBe(403);
    expect((await get(`/v1/cache${RANGE}&groupBy=user`)).body).toMatchObject({ error: { code: 'invalid_request', param: 'groupBy' } });
    expect((await get(`/v1/cache`, {})).status).toBe(401);
  });

  it('bills embeddings in /v1/costs: costUsd includes them, embeddingUsd shows them', async () => {
    const { body } = await get(`/v1/costs${RANGE}&tenant=acme`);
    // upstream: m1 0.00045 + p1 0.015; embeddings 0.000051
    expect(body.totals).toMatchObject({ requests: 6, completed: 2, cacheHits: 3, costUsd: 0.015501, embeddingUsd: 0.000051, savedUsd: 0.00135 });
  });

  it('counts every kind of cached answer in the SLO cache hit rate', async () => {
    const { body } = await get('/v1/slo?window=7d&tenant=acme');
    // cached c1, s1, co1 of completed m1, p1 and cached
    expect(body.totals).toMatchObject({ cacheHitRate: 0.6, outcomes: { completed: 2, cached: 3, failed: 1 } });
  });

  it("puts a request's kind, similarity, match, leader and embedding on its timeline", async () => {
    const s1 = (await get('/v1/requests/s1')).body;
    expect(s1).toMatchObject({
      outcome: 'cached',
      cacheHit: true,
      cacheKind: 'semantic',
      costUsd: 0,
      savedUsd: 0.00045,
      savedTokens: 1500,
      embeddingTokens: 50,
      embeddingUsd: 0.000001,
    });
    expect(s1.timeline.at(-1).data).toMatchObject({ kind: 'semantic', similarity: 0.96, matchedRequestId: 'm1', embedding: { usage: { prompt_tokens: 50 } } });
    const co1 = (await get('/v1/requests/co1')).body;
    expect(co1).toMatchObject({ cacheKind: 'coalesced', embeddingUsd: 0 });
    expect(co1.timeline.at(-1)).toMatchObject({ type: 'cache.coalesced', data: { leaderRequestId: 'm1' } });
    const m1 = (await get('/v1/requests/m1')).body;
    expect(m1).toMatchObject({ outcome: 'completed', cacheKind: null, costUsd: 0.00045, embeddingTokens: 2000, embeddingUsd: 0.00004 });
  });

  it("counts a request's embedding in its budgets when it ends", async () => {
    // m1: 0.00045 upstream + 0.00004 embedding; s1: a hit, 0.000001 embedding
    expect(await counter()).toEqual({ spent: '0.000491', requests: 2 });
  });

  it('replays to the same numbers, whatever the batches', async () => {
    const report = (await get(`/v1/cache${RANGE}&groupBy=tenant,model,day,kind`)).body;
    const costs = (await get(`/v1/costs${RANGE}&groupBy=tenant,model,day`)).body;
    await truncateProjections(db, POSITION);
    expect((await get(`/v1/cache${RANGE}`)).body.totals.requests).toBe(0);
    await project(raw(seeded), 1);
    expect((await get(`/v1/cache${RANGE}&groupBy=tenant,model,day,kind`)).body).toEqual(report);
    expect((await get(`/v1/costs${RANGE}&groupBy=tenant,model,day`)).body).toEqual(costs);
    expect(await counter()).toEqual({ spent: '0.000491', requests: 2 });
  });
});

describe.each(['PGlite', 'Postgres'] as const)('the cache migration on %s', (kind) => {
  it('marks hits projected before it exact, with the tokens their timeline rows kept', async () => {
    const opened = await openDb(kind);
    const db = opened.db;
    try {
      const before: Record<string, Migration> = {
        '20251121000000_init': init,
        '20261130000000_endpoints_cancelled': endpointsCancelled,
        '20261201000000_budgets': budgets,
      };
      const { error } = await new Migrator({ db, provider: { getMigrations: async () => before } }).migrateToLatest();
      expect(error).toBeUndefined();
      const at = new Date(T0);
      const hit = (id: string) => ({ request_id: id, tenant: 'acme', received_at: at, outcome: 'cached' as const, cache_hit: true, saved_usd: '0.00045' });
      await db
        .insertInto('requests')
        .values([hit('old1'), hit('old2'), { request_id: 'old3', tenant: 'acme', received_at: at, outcome: 'completed', cost_usd: '0.1' }])
        .execute();
      // old1's cache.hit is on the timeline; old2's aged out before
      const event = makeEvent(
        'cache.hit',
        { requestId: 'old1', tenant: 'acme', service: 'cache', at: T0, reason: 'exact hit' },
        {
          ctx: {} as never,
          key: 'k',
          answer: { model: 'gpt-4o-mini', usage: { prompt_tokens: 1000, completion_tokens: 500, total_tokens: 1500 } } as never,
          storedAt: T0,
        },
      );
      await db
        .insertInto('events')
        .values({ seq: 1, request_id: 'old1', type: 'cache.hit', tenant: 'acme', service: 'cache', at, reason: '', data: JSON.stringify(event.data) })
        .execute();
      await migrate(db);
      const rows = await db
        .selectFrom('requests')
        .select(['request_id', 'cache_kind', 'saved_tokens', 'embedding_tokens', sql<string>`embedding_usd::text`.as('embedding_usd')])
        .orderBy('request_id')
        .execute();
      expect(rows).toEqual([
        { request_id: 'old1', cache_kind: 'exact', saved_tokens: 1500, embedding_tokens: 0, embedding_usd: '0' },
        { request_id: 'old2', cache_kind: 'exact', saved_tokens: 0, embedding_tokens: 0, embedding_usd: '0' },
        { request_id: 'old3', cache_kind: null, saved_tokens: 0, embedding_tokens: 0, embedding_usd: '0' },
      ]);
      await expect(sql`update requests set cache_kind = 'fuzzy' where request_id = 'old1'`.execute(db)).rejects.toThrow(/requests_cache_kind/);
    } finally {
      await opened.drop();
    }
  });
});
