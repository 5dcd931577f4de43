// Issue 13, item 3: the ledger's per-variant report (GET /v1/variants) from projected events, and
// the canary guard's rollback written to a real control bucket (compare-and-set: once).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson } from '@sluice/bus';
import { minimalConfig, startTestBus, type TestBus } from '@sluice/bus/testing';
import { ControlKeys, makeEvent, parseConfig, type AnyEvent, type Canary, type SluiceEvent } from '@sluice/contracts';
import { answer, chatRequest, completed, requestContext, requested, routed } from '@sluice/contracts/testing';
import { createLogger } from '@sluice/telemetry';
import { createDb, type Db } from './db.js';
import { migrate } from './migrate.js';
import { buildApp } from './http.js';
import { applyBatch, type RawEvent, type StreamReader } from './store.js';
import { asAdmin, asReader, readersConfig } from './auth-fixtures.js';
import { T0, priceOf } from './fixtures.js';
import { guardCanaries, judgeCanary, type GuardDeps } from './guard.js';

const log = createLogger('variants-test', 'silent');
const noGaps: StreamReader = {
  firstSeq: async () => 1,
  read: async (seq) => {
    throw new Error(`the test left a gap at ${seq}`);
  },
};

/** One request of `canary`'s `variant`: requested, routed (the variant set), then completed or failed after `latencyMs`. */
function variantRequest(id: string, tenant: string, canary: string, variant: string, at: number, latencyMs: number, ok: boolean): AnyEvent[] {
  const ctx = requestContext(chatRequest({ model: 'gpt-4o-mini', user: id }), { frontDoor: 'http', receivedAt: at });
  const chosen = { ...ctx, variant: { canary, name: variant } };
  const end = at + latencyMs;
  const f = { requestId: id, tenant, service: 'invoker' as const, at: end, reason: 'test' };
  return [
    requested(id, tenant, { ctx }, { at }),
    routed(id, tenant, { ctx: chosen, tier: 'explicit', candidates: [{ model: 'gpt-4o-mini', deployment: 'sim' }] }, { at: at + 1 }),
    ok
      ? completed(id, tenant, { ctx: chosen, answer: answer('gpt-4o-mini', 1000, 500), deployment: 'sim', upstreamLatencyMs: latencyMs - 5 }, { at: end })
      : makeEvent('chat.failed', f, { code: 'upstream_failed', status: 502, message: 'Every upstream deployment failed.', attempts: 1, receivedAt: at }),
  ] as AnyEvent[];
}

// canary "fresh": a has 10 answers at 100..1000 ms; b has 2 answers and 3 failures.
// canary "calm": a and b each 10 requests, b with 1 failure (10 %, under its 20 % margin).
// canary "few": b failed all 3 of its requests, under minRequests 5.
const seeded: AnyEvent[] = [
  ...Array.from({ length: 10 }, (_, i) => variantRequest(`fa${i}`, 'acme', 'fresh', 'a', T0 + i, 100 * (i + 1), true)).flat(),
  ...Array.from({ length: 5 }, (_, i) => variantRequest(`fb${i}`, 'acme', 'fresh', 'b', T0 + 20 + i, 50, i < 2)).flat(),
  ...Array.from({ length: 10 }, (_, i) => variantRequest(`ca${i}`, 'beta', 'calm', 'a', T0 + 40 + i, 50, true)).flat(),
  ...Array.from({ length: 10 }, (_, i) => variantRequest(`cb${i}`, 'beta', 'calm', 'b', T0 + 60 + i, 50, i > 0)).flat(),
  ...Array.from({ length: 3 }, (_, i) => variantRequest(`xb${i}`, 'beta', 'few', 'b', T0 + 80 + i, 50, false)).flat(),
];
const raw = (events: AnyEvent[]): RawEvent[] => events.map((e, i) => ({ seq: i + 1, data: new TextEncoder().encode(JSON.stringify(e)) }));

const guard = { maxErrorRateDelta: 0.2, windowMs: 60_000, minRequests: 5 };
const canary = (id: string): Canary => ({
  id,
  match: {},
  baseline: 'a',
  variants: [
    { name: 'a', percent: 80 },
    { name: 'b', percent: 20 },
  ],
  guard,
});
const canaries = [canary('fresh'), canary('calm'), canary('few'), { ...canary('unguarded'), guard: undefined }];

let dataDir: string;
let db: Db;
let app: FastifyInstance;
let t: TestBus;
beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'sluice-ledger-variants-'));
  db = createDb({ dataDir });
  await migrate(db);
  const config = readersConfig();
  app = buildApp({ db, positionName: 'ledger', now: () => T0 + 60_000, config: () => config });
  await applyBatch(db, raw(seeded), { name: 'ledger', priceOf, stream: noGaps, log });
  t = await startTestBus(parseConfig(minimalConfig([{ id: 'acme' }])), { name: 'variants' });
});
afterAll(async () => {
  await app?.close();
  await db?.destroy();
  await t?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('GET /v1/variants', () => {
  it("reports each variant's requests, error rate, latency percentiles and cost", async () => {
    const res = await app.inject({ url: '/v1/variants?canary=fresh&from=2025-06-01T00:00:00Z&to=2025-06-02T00:00:00Z', headers: asAdmin });
    expect(res.statusCode).toBe(200);
    const cost = (n: number) => Math.round(n * (1000 * 0.15 + 500 * 0.6)) / 1e6; // gpt-4o-mini at 0.15 / 0.60 per MTok
    expect(res.json().rows).toEqual([
      { canary: 'fresh', variant: 'a', requests: 10, completed: 10, failed: 0, errorRate: 0, latencyMs: { p50: 550, p95: 955, p99: 991 }, costUsd: cost(10) },
      { canary: 'fresh', variant: 'b', requests: 5, completed: 2, failed: 3, errorRate: 0.6, latencyMs: { p50: 50, p95: 50, p99: 50 }, costUsd: cost(2) },
    ]);
  });

  it("a tenant's read key sees its own tenant's variants only", async () => {
    const res = await app.inject({ url: '/v1/variants?from=2025-06-01T00:00:00Z&to=2025-06-02T00:00:00Z', headers: asReader('beta') });
    expect(res.statusCode).toBe(200);
    expect(res.json().rows.map((r: { canary: string; variant: string }) => `${r.canary}/${r.variant}`)).toEqual(['calm/a', 'calm/b', 'few/b']);
    const bad = await app.inject({ url: '/v1/variants?canary=', headers: asAdmin });
    expect(bad.statusCode).toBe(400);
  });

  it("names the canary and the variant on one request's report", async () => {
    const res = await app.inject({ url: '/v1/requests/fb0', headers: asAdmin });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ canary: 'fresh', variant: 'b' });
  });
});

describe('the canary guard', () => {
  it('rolls back the failing canary once, with the event saying why, and leaves the healthy, the too-small and the unguarded alone', async () => {
    const published: Array<SluiceEvent<'canary.rolled_back'>> = [];
    const deps: GuardDeps = {
      db,
      control: t.buckets.control,
      canaries: () => canaries,
      // as if this ledger had not seen the rollback yet: the second pass must still not write it again
      rolledBack: () => ({}),
      publish: async (e) => void published.push(e),
      log,
    };
    const now = T0 + 30_000;
    const first = await guardCanaries(deps, now);
    expect(first.map((v) => v.canary)).toEqual(['fresh']);
    expect(await guardCanaries(deps, now + 1000)).toEqual([]);
    expect(published).toHaveLength(1);
    expect(published[0]!.data).toEqual({
      canary: 'fresh',
      variant: 'b',
      baseline: 'a',
      errorRate: 0.6,
      baselineErrorRate: 0,
      requests: 5,
      baselineRequests: 10,
      windowMs: 60_000,
      maxErrorRateDelta: 0.2,
    });
    expect(published[0]!.reason).toBe(
      "canary fresh rolled back: variant b's error rate 60.0 % (5 requests) exceeds baseline a's 0.0 % (10 requests) by more than 20.0 % over the last 60 s",
    );
    const stored = await getJson<Record<string, { at: number; variant: string; reason: string }>>(t.buckets.control, ControlKeys.canaries);
    expect(Object.keys(stored!.value)).toEqual(['fresh']);
    expect(stored!.value.fresh).toMatchObject({ at: now, variant: 'b' });
  });

  it('judges a variant against the baseline by the margin, and a missing baseline as 0 % errors', () => {
    expect(
      judgeCanary(canary('x'), [
        { variant: 'a', ended: 10, failed: 0 },
        { variant: 'b', ended: 5, failed: 1 },
      ]),
    ).toBeUndefined();
    expect(
      judgeCanary(canary('x'), [
        { variant: 'a', ended: 10, failed: 5 },
        { variant: 'b', ended: 5, failed: 3 },
      ]),
    ).toBeUndefined();
    expect(judgeCanary(canary('x'), [{ variant: 'b', ended: 5, failed: 2 }])).toMatchObject({ variant: 'b', baselineRequests: 0, errorRate: 0.4 });
  });

  it('a window that has moved past the failures rolls nothing back', async () => {
    // calm's b failed 10 %: over a 5-point margin, but only while its requests are in the window
    const tight: Canary = { ...canary('calm'), guard: { ...guard, maxErrorRateDelta: 0.05 } };
    const deps: GuardDeps = { db, control: t.buckets.control, canaries: () => [tight], rolledBack: () => ({}), publish: async () => undefined, log };
    expect(await guardCanaries(deps, T0 + 10 * 60_000)).toEqual([]);
    expect((await guardCanaries(deps, T0 + 30_000)).map((v) => v.canary)).toEqual(['calm']);
  });
});
