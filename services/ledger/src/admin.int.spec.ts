// The admin API and the read API's keys against a real nats-server (the sluice_keys bucket, the
// event stream) and PGlite, through fastify inject.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, publishEvent } from '@sluice/bus';
import { eventually, startTestBus, type TestBus } from '@sluice/bus/testing';
import { hashKey, parseEvent, Subjects, Topology, type AnyEvent, type VirtualKey } from '@sluice/contracts';
import { expectErrorShape } from '@sluice/contracts/testing';
import { ADMIN_KEY, asAdmin, asReader, readersConfig } from './auth-fixtures.js';
import { LEDGER_POSITION, natsStreamReader, startProjector, type Projector } from './consumer.js';
import { createDb, type Db } from './db.js';
import { T0, completedRequest, priceOf } from './fixtures.js';
import { buildApp } from './http.js';
import { migrate } from './migrate.js';

let t: TestBus;
let dir: string;
let db: Db;
let app: FastifyInstance;
let projector: Projector;
let config = readersConfig({ acme: { ledger: { storeContent: true } } });

beforeAll(async () => {
  t = await startTestBus(config, { name: 'ledger-admin' });
  dir = mkdtempSync(join(tmpdir(), 'sluice-ledger-admin-'));
  db = createDb({ dataDir: dir });
  await migrate(db);
  const stream = natsStreamReader(t.bus.jsm);
  app = buildApp({
    db,
    positionName: LEDGER_POSITION,
    // the fixtures' requests are on 2025-06-01
    now: () => T0 + 3_600_000,
    config: () => config,
    readEvent: async (seq) => (await stream.read(seq).catch(() => null))?.data,
    admin: {
      keys: t.buckets.keys,
      publish: async (e) => {
        await publishEvent(t.bus.js, e);
      },
    },
  });
  projector = await startProjector(t.bus, { db, priceOf, log: t.log, lingerMs: 2 });
});
afterAll(async () => {
  await projector?.stop();
  await app?.close();
  await db?.destroy();
  await t?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const admin = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown, headers: Record<string, string> = asAdmin) =>
  app.inject({ method, url, headers, ...(payload !== undefined ? { payload: payload as object } : {}) });

async function lastEvent(type: string, tenant: string): Promise<AnyEvent> {
  const m = await t.bus.jsm.streams.getMessage(Topology.stream.name, { last_by_subj: Subjects.event(type as AnyEvent['type'], tenant) });
  return parseEvent(m!.data);
}

describe('admin API: virtual keys', () => {
  it('creates a key: 201, the key shown once, the record stored hashed, key.created published without secrets', async () => {
    const res = await admin('POST', '/admin/v1/keys', { tenant: 'acme', name: 'ci', models: ['m1'], lane: 'batch', metadata: { team: 'search' } });
    expect(res.statusCode).toBe(201);
    const body = res.json<{ id: string; key: string; status: string; tenant: string }>();
    expect(body).toMatchObject({ object: 'key', tenant: 'acme', name: 'ci', status: 'active', models: ['m1'], lane: 'batch', metadata: { team: 'search' } });
    expect(body.key).toMatch(/^sk-sluice-[A-Za-z0-9]{43}$/);
    expect(res.body).not.toMatch(/[0-9a-f]{64}/);
    const stored = (await getJson<VirtualKey>(t.buckets.keys, body.id))!.value;
    expect(stored.sha256).toBe(hashKey(body.key));
    expect(JSON.stringify(stored)).not.toContain(body.key);
    const event = await lastEvent('key.created', 'acme');
    expect(event.data).toEqual({ keyId: body.id, name: 'ci' });
    expect(JSON.stringify(event)).not.toContain(body.key);
    // shown once: reading it back never shows it again
    const again = await admin('GET', `/admin/v1/keys/${body.id}`);
    expect(again.statusCode).toBe(200);
    expect(again.json()).not.toHaveProperty('key');
    expect(again.body).not.toMatch(/[0-9a-f]{64}/);
  });

  it('refuses bad bodies with 400 invalid_request naming the field', async () => {
    for (const [payload, param] of [
      [{ tenant: 'acme', name: 'x', colour: 'red' }, 'colour'],
      [{ tenant: 'nobody', name: 'x' }, 'tenant'],
      [{ tenant: 'acme', name: 'x', limits: { requestsPerMinute: -1, tokensPerMinute: 1 } }, 'limits.requestsPerMinute'],
      [{ tenant: 'acme', name: 'x', models: ['not-a-model'] }, 'models.0'],
      [{ tenant: 'acme', name: 'x', expiresAt: '2025-06-01T00:00:00Z' }, 'expiresAt'],
    ] as const) {
      const res = await admin('POST', '/admin/v1/keys', payload);
      expect([param, res.statusCode]).toEqual([param, 400]);
      expect(expectErrorShape(res.json(), 'invalid_request').param).toBe(param);
    }
    const broken = await app.inject({
      method: 'POST',
      url: '/admin/v1/keys',
      headers: { ...asAdmin, 'content-type': 'application/json' },
      payload: '{"tenant":',
    });
    expect(broken.statusCode).toBe(400);
    expectErrorShape(broken.json(), 'invalid_json');
    const huge = await admin('POST', '/admin/v1/keys', { tenant: 'acme', name: 'x', pad: 'x'.repeat(100_000) });
    expect(huge.statusCode).toBe(413);
    expectErrorShape(huge.json(), 'body_too_large');
  });

  it('lists keys by tenant a page at a time, without hashes', async () => {
    for (const name of ['b1', 'b2', 'b3']) expect((await admin('POST', '/admin/v1/keys', { tenant: 'beta', name })).statusCode).toBe(201);
    const first = (await admin('GET', '/admin/v1/keys?tenant=beta&limit=2')).json<{
      data: Array<{ id: string; name: string }>;
      has_more: boolean;
      last_id: string;
    }>();
    expect(first.data).toHaveLength(2);
    expect(first.has_more).toBe(true);
    const second = (await admin('GET', `/admin/v1/keys?tenant=beta&limit=2&after=${first.last_id}`)).json<typeof first>();
    expect(second.data).toHaveLength(1);
    expect(second.has_more).toBe(false);
    expect([...first.data, ...second.data].map((k) => k.name).sort()).toEqual(['b1', 'b2', 'b3']);
    const all = await admin('GET', '/admin/v1/keys');
    expect(all.json<{ data: unknown[] }>().data.length).toBeGreaterThanOrEqual(4);
    expect(all.body).not.toMatch(/[0-9a-f]{64}|sk-sluice-/);
    for (const limit of ['0', '101', 'x']) expect((await admin('GET', `/admin/v1/keys?limit=${limit}`)).statusCode).toBe(400);
  });

  it('rotates: a new key shown once, the old hash kept for the grace period only, key.rotated published', async () => {
    const { id, key: old } = (await admin('POST', '/admin/v1/keys', { tenant: 'acme', name: 'rotating' })).json<{ id: string; key: string }>();
    const res = await admin('POST', `/admin/v1/keys/${id}/rotate`, { graceSeconds: 60 });
    expect(res.statusCode).toBe(200);
    const rotated = res.json<{ key: string; previousValidUntil: number; rotatedAt: number }>();
    expect(rotated.key).not.toBe(old);
    expect(rotated.previousValidUntil - rotated.rotatedAt).toBe(60_000);
    const stored = (await getJson<VirtualKey>(t.buckets.keys, id))!.value;
    expect(stored).toMatchObject({ sha256: hashKey(rotated.key), previousSha256: hashKey(old) });
    expect((await lastEvent('key.rotated', 'acme')).data).toMatchObject({ keyId: id, previousValidUntil: rotated.previousValidUntil });
    // no body: no grace
    const sharp = await app.inject({ method: 'POST', url: `/admin/v1/keys/${id}/rotate`, headers: asAdmin });
    expect(sharp.statusCode).toBe(200);
    expect((await getJson<VirtualKey>(t.buckets.keys, id))!.value.previousSha256).toBeUndefined();
    for (const payload of [{ graceSeconds: -1 }, { graceSeconds: 1.5 }, { grace: 5 }, { graceSeconds: 8 * 86_400 }]) {
      expect((await admin('POST', `/admin/v1/keys/${id}/rotate`, payload)).statusCode).toBe(400);
    }
  });

  it('revokes: kept with revokedAt, key.revoked published once, and a revoked key is not rotated', async () => {
    const { id } = (await admin('POST', '/admin/v1/keys', { tenant: 'acme', name: 'doomed' })).json<{ id: string }>();
    const res = await admin('DELETE', `/admin/v1/keys/${id}`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id, status: 'revoked' });
    expect((await getJson<VirtualKey>(t.buckets.keys, id))!.value.revokedAt).toBeGreaterThan(0);
    expect((await lastEvent('key.revoked', 'acme')).data).toEqual({ keyId: id, name: 'doomed' });
    const before = (await t.bus.jsm.streams.info(Topology.stream.name)).state.last_seq;
    expect((await admin('DELETE', `/admin/v1/keys/${id}`)).json()).toMatchObject({ status: 'revoked' });
    expect((await t.bus.jsm.streams.info(Topology.stream.name)).state.last_seq).toBe(before);
    const rotate = await admin('POST', `/admin/v1/keys/${id}/rotate`, {});
    expect(rotate.statusCode).toBe(400);
    expect(expectErrorShape(rotate.json(), 'invalid_request').param).toBe('id');
  });

  it('applies concurrent changes one after another (compare-and-set): only the last rotated key is stored, a revoke wins', async () => {
    const { id } = (await admin('POST', '/admin/v1/keys', { tenant: 'acme', name: 'contended' })).json<{ id: string }>();
    const before = (await t.bus.jsm.streams.info(Topology.stream.name)).state.last_seq;
    const answers = await Promise.all(Array.from({ length: 5 }, () => admin('POST', `/admin/v1/keys/${id}/rotate`, { graceSeconds: 0 })));
    // five rotations in the same (test) millisecond are five events
    expect((await t.bus.jsm.streams.info(Topology.stream.name)).state.last_seq - before).toBe(5);
    expect(answers.map((a) => a.statusCode)).toEqual([200, 200, 200, 200, 200]);
    const keys = answers.map((a) => a.json<{ key: string }>().key);
    expect(new Set(keys).size).toBe(5);
    const stored = (await getJson<VirtualKey>(t.buckets.keys, id))!.value;
    expect(keys.filter((k) => hashKey(k) === stored.sha256)).toHaveLength(1);
    const [revoke, rotate] = await Promise.all([admin('DELETE', `/admin/v1/keys/${id}`), admin('POST', `/admin/v1/keys/${id}/rotate`, {})]);
    expect(revoke.statusCode).toBe(200);
    expect([200, 400]).toContain(rotate.statusCode);
    expect((await getJson<VirtualKey>(t.buckets.keys, id))!.value.revokedAt).toBeDefined();
  });

  it('answers unknown keys 404 not_found', async () => {
    for (const [method, url] of [
      ['GET', '/admin/v1/keys/key_doesNotExist00000000'],
      ['GET', '/admin/v1/keys/not-an-id'],
      ['DELETE', '/admin/v1/keys/key_doesNotExist00000000'],
      ['POST', '/admin/v1/keys/key_doesNotExist00000000/rotate'],
    ] as const) {
      const res = await admin(method, url, method === 'POST' ? {} : undefined);
      expect([url, res.statusCode]).toEqual([url, 404]);
      expectErrorShape(res.json(), 'not_found');
    }
  });
});

describe('keys on the ledger', () => {
  it('refuses a missing key 401 missing_api_key and a wrong one 401 invalid_api_key, on every route but /healthz', async () => {
    for (const url of ['/v1/costs', '/v1/slo', '/v1/budgets', '/v1/requests/req_x', '/v1/ledger/position', '/admin/v1/keys']) {
      const missing = await app.inject({ url });
      expect([url, missing.statusCode]).toEqual([url, 401]);
      expectErrorShape(missing.json(), 'missing_api_key');
      expect(missing.headers['www-authenticate']).toBe('Bearer');
      const wrong = await app.inject({ url, headers: { authorization: 'Bearer sk-wrong' } });
      expect([url, wrong.statusCode]).toEqual([url, 401]);
      expectErrorShape(wrong.json(), 'invalid_api_key');
    }
    expect((await app.inject({ url: '/healthz' })).statusCode).toBe(200);
  });

  it('refuses a read key on the admin API 403 permission_denied, before reading a body', async () => {
    const res = await admin('POST', '/admin/v1/keys', { tenant: 'acme', name: 'sneaky' }, asReader('acme'));
    expect(res.statusCode).toBe(403);
    expectErrorShape(res.json(), 'permission_denied');
    expect((await admin('GET', '/admin/v1/keys', undefined, asReader('beta'))).statusCode).toBe(403);
  });

  it("limits a read key to its tenant: costs and SLOs filtered, another tenant's 403, its timelines 404", async () => {
    await publishEvent(t.bus.js, completedRequest({ id: 'r-acme', tenant: 'acme', at: T0 }, 'm1', 100, 50, 20)[0]!);
    for (const e of [
      ...completedRequest({ id: 'r-acme', tenant: 'acme', at: T0 }, 'm1', 100, 50, 20).slice(1),
      ...completedRequest({ id: 'r-beta', tenant: 'beta', at: T0 }, 'm1', 10, 5, 20),
    ]) {
      await publishEvent(t.bus.js, e);
    }
    const range = 'from=2025-06-01T00:00:00Z&to=2025-06-02T00:00:00Z';
    await eventually(async () => expect((await admin('GET', `/v1/costs?${range}&groupBy=tenant`)).json<{ rows: unknown[] }>().rows).toHaveLength(2), 10_000);
    const acmeCosts = (await admin('GET', `/v1/costs?${range}&groupBy=tenant`, undefined, asReader('acme'))).json<{ rows: Array<{ tenant: string }> }>();
    expect(acmeCosts.rows.map((r) => r.tenant)).toEqual(['acme']);
    expect((await admin('GET', `/v1/costs?${range}&tenant=acme`, undefined, asReader('acme'))).statusCode).toBe(200);
    const denied = await admin('GET', `/v1/costs?${range}&tenant=beta`, undefined, asReader('acme'));
    expect(denied.statusCode).toBe(403);
    expectErrorShape(denied.json(), 'permission_denied');
    expect((await admin('GET', '/v1/slo?window=366d&tenant=beta', undefined, asReader('acme'))).statusCode).toBe(403);
    const slo = (await admin('GET', '/v1/slo?window=366d&groupBy=tenant', undefined, asReader('beta'))).json<{ rows: Array<{ tenant: string }> }>();
    expect(slo.rows.map((r) => r.tenant)).toEqual(['beta']);
    expect((await admin('GET', '/v1/requests/r-beta', undefined, asReader('beta'))).statusCode).toBe(200);
    const hidden = await admin('GET', '/v1/requests/r-beta', undefined, asReader('acme'));
    expect(hidden.statusCode).toBe(404);
    expectErrorShape(hidden.json(), 'not_found');
    expect((await admin('GET', '/v1/ledger/position', undefined, asReader('acme'))).statusCode).toBe(200);
    expect((await admin('GET', '/v1/budgets', undefined, asReader('acme'))).json()).toEqual({ budgets: [] });
    expect((await admin('GET', '/v1/budgets?tenant=beta', undefined, asReader('acme'))).statusCode).toBe(403);
    const badParam = await admin('GET', '/v1/budgets?past=maybe');
    expect(badParam.statusCode).toBe(400);
    expect(badParam.json().error.param).toBe('past');
  });

  it('shows prompt and answer text only for a tenant with ledger.storeContent, read from the stream', async () => {
    const acme = (await admin('GET', '/v1/requests/r-acme')).json<{ content: { shown: boolean }; timeline: Array<{ type: string; data: any }> }>();
    expect(acme.content.shown).toBe(true);
    expect(acme.timeline.find((e) => e.type === 'chat.requested')!.data.body).toBeDefined();
    expect(acme.timeline.find((e) => e.type === 'chat.completed')!.data.answer.body.choices[0].message.content).toBe('hi');
    const beta = await admin('GET', '/v1/requests/r-beta');
    const report = beta.json<{ content: { shown: boolean; reason: string }; timeline: Array<{ type: string; data: any }> }>();
    expect(report.content).toEqual({ shown: false, reason: expect.stringContaining('ledger.storeContent') });
    expect(report.timeline.find((e) => e.type === 'chat.requested')!.data.body).toBeUndefined();
    const completed = report.timeline.find((e) => e.type === 'chat.completed')!;
    expect(completed.data.answer).toMatchObject({ model: 'm1', usage: { prompt_tokens: 10 } });
    expect(completed.data.answer.body).toBeUndefined();
    // the decisions stay: every event, its reason
    expect(report.timeline.map((e) => e.type)).toEqual([
      'chat.requested',
      'chat.admitted',
      'cache.missed',
      'chat.routed',
      'invoke.attempted',
      'chat.completed',
    ]);
    // opting out applies at once, live
    config = readersConfig();
    expect((await admin('GET', '/v1/requests/r-acme')).json<{ content: { shown: boolean } }>().content.shown).toBe(false);
    expect((await admin('GET', '/v1/requests/r-acme')).body).not.toContain('"message"');
    config = readersConfig({ acme: { ledger: { storeContent: true } } });
  });

  it('applies a config change at once: a new admin key works, the old one stops', async () => {
    const saved = config;
    config = readersConfig();
    config = { ...config, admin: { keySha256: [hashKey('sk-rotated-admin')] } };
    expect((await app.inject({ url: '/v1/ledger/position', headers: { authorization: `Bearer ${ADMIN_KEY}` } })).statusCode).toBe(401);
    expect((await app.inject({ url: '/v1/ledger/position', headers: { authorization: 'Bearer sk-rotated-admin' } })).statusCode).toBe(200);
    config = saved;
  });
});
