// The console's server side: its pages without a key, and its live routes over a real bucket
// (the browser's view of them is test/console.e2e.spec.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeJson, putDegrade } from '@sluice/bus';
import { eventually, minimalConfig, startTestBus, type TestBus } from '@sluice/bus/testing';
import { hashKey, parseConfig } from '@sluice/contracts';
import { buildApp } from './http.js';
import { openTestDb } from './db.fixtures.js';
import { ADMIN_KEY, asAdmin, asReader, READ_KEYS } from './auth-fixtures.js';

const NOW = Date.parse('2026-12-01T12:00:00Z');
const config = parseConfig({
  ...minimalConfig([
    { id: 'acme', readKeySha256: [hashKey(READ_KEYS.acme)] },
    { id: 'beta', readKeySha256: [hashKey(READ_KEYS.beta)] },
  ]),
  deployments: {
    east: { baseUrl: 'http://127.0.0.1:1/v1', timeoutMs: 1000 },
    north: { baseUrl: 'http://127.0.0.1:1/v1', timeoutMs: 1000 },
    south: { baseUrl: 'http://127.0.0.1:1/v1', timeoutMs: 1000 },
    west: { baseUrl: 'http://127.0.0.1:1/v1', timeoutMs: 1000 },
  },
  models: { m1: { deployments: ['east', 'north', 'south', 'west'], fallback: [], price: { inputPerMTok: 1, outputPerMTok: 1 } } },
  admin: { keySha256: [hashKey(ADMIN_KEY)] },
});

let testBus: TestBus;
let testDb: Awaited<ReturnType<typeof openTestDb>>;
let app: ReturnType<typeof buildApp>;

beforeAll(async () => {
  testBus = await startTestBus(config, { name: 'console' });
  testDb = await openTestDb('Postgres', 'console');
  const { buckets, control } = testBus;
  app = buildApp({
    db: testDb.db,
    positionName: 'ledger',
    config: () => config,
    now: () => NOW,
    live: { degrade: () => control.degrade(), circuits: buckets.circuits },
  });
});

afterAll(async () => {
  await app?.close();
  await testDb?.drop();
  await testBus?.stop();
});

describe('console pages', () => {
  it('are served without a key, with their types and a content security policy; the API still takes one', async () => {
    const page = await app.inject({ url: '/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toContain("default-src 'none'");
    expect(page.body).toContain('<h1>Sluice console</h1>');
    expect(page.body).not.toContain('{{chart.js}}');
    const script = await app.inject({ url: '/console/main.js' });
    expect([script.statusCode, script.headers['content-type']]).toEqual([200, 'text/javascript; charset=utf-8']);
    const chart = await app.inject({ url: '/console/vendor/chart-4.6.1.umd.min.js' });
    expect([chart.statusCode, chart.headers['cache-control']]).toEqual([200, 'public, max-age=31536000, immutable']);
    expect(chart.body).toContain('Chart');
    expect((await app.inject({ method: 'HEAD', url: '/' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/v1/costs' })).statusCode).toBe(401);
  });

  it('other paths are the API as before: an unknown file 404, a POST of the page 404', async () => {
    const unknown = await app.inject({ url: '/console/secrets.json' });
    expect([unknown.statusCode, unknown.json().error.code]).toEqual([404, 'not_found']);
    expect((await app.inject({ method: 'POST', url: '/' })).statusCode).toBe(404);
  });
});

describe('console routes', () => {
  it('GET /v1/principal says who the key is', async () => {
    expect((await app.inject({ url: '/v1/principal', headers: asAdmin })).json()).toEqual({ role: 'admin' });
    expect((await app.inject({ url: '/v1/principal', headers: asReader('acme') })).json()).toEqual({ role: 'tenant', tenant: 'acme' });
    const wrong = await app.inject({ url: '/v1/principal', headers: { authorization: 'Bearer sk-nobody' } });
    expect([wrong.statusCode, wrong.json().error.code]).toEqual([401, 'invalid_api_key']);
  });

  it('GET /v1/degrade: the level in force with its meaning, for any key', async () => {
    const initial = await app.inject({ url: '/v1/degrade', headers: asReader('beta') });
    expect(initial.json()).toEqual({ level: 0, meaning: 'full service', override: null, since: null, reason: 'initial' });
    await putDegrade(testBus.buckets.control, { level: 3, override: 3, since: NOW - 60_000, reason: 'operator' });
    await eventually(() => testBus.control.degrade().level === 3);
    expect((await app.inject({ url: '/v1/degrade', headers: asAdmin })).json()).toEqual({
      level: 3,
      meaning: 'static answers',
      override: 3,
      since: '2026-12-01T11:59:00.000Z',
      reason: 'operator',
    });
  });

  it('GET /v1/circuits: every configured deployment and any other recorded, closed unless its record says otherwise; admin keys only', async () => {
    const kv = testBus.buckets.circuits;
    await kv.put('east', encodeJson({ state: 'open', failures: 5, openedAt: NOW - 1000, transitions: 1 }));
    await kv.put('north', encodeJson({ state: 'half-open', failures: 5, openedAt: NOW - 40_000, transitions: 2, trials: { 'req_1:1': NOW } }));
    // a 429's pause: closed, but no call goes until then; a pause that ended is plain closed
    await kv.put('south', encodeJson({ state: 'closed', failures: 1, openedAt: 0, transitions: 0, pausedUntil: NOW + 5000 }));
    await kv.put('west', encodeJson({ state: 'closed', failures: 0, openedAt: 0, transitions: 0, pausedUntil: NOW - 5000 }));
    await kv.put('gone', encodeJson({ state: 'open', failures: 9, openedAt: NOW, transitions: 1 }));
    // unreadable: closed, as the invokers take it
    await kv.put('d1', new TextEncoder().encode('not json'));
    const res = await app.inject({ url: '/v1/circuits', headers: asAdmin });
    expect(res.json()).toEqual({
      object: 'list',
      data: [
        { deployment: 'd1', state: 'closed', failures: 0, openedAt: null, pausedUntil: null, configured: false },
        { deployment: 'east', state: 'open', failures: 5, openedAt: '2026-12-01T11:59:59.000Z', pausedUntil: null, configured: true },
        { deployment: 'gone', state: 'open', failures: 9, openedAt: '2026-12-01T12:00:00.000Z', pausedUntil: null, configured: false },
        { deployment: 'north', state: 'half-open', failures: 5, openedAt: '2026-12-01T11:59:20.000Z', pausedUntil: null, configured: true },
        { deployment: 'south', state: 'paused', failures: 1, openedAt: null, pausedUntil: '2026-12-01T12:00:05.000Z', configured: true },
        { deployment: 'west', state: 'closed', failures: 0, openedAt: null, pausedUntil: null, configured: true },
      ],
    });
    const tenant = await app.inject({ url: '/v1/circuits', headers: asReader('acme') });
    expect([tenant.statusCode, tenant.json().error.code]).toEqual([403, 'permission_denied']);
  });

  it('without live sources the live routes are not served', async () => {
    const bare = buildApp({ db: testDb.db, positionName: 'ledger', config: () => config });
    const res = await bare.inject({ url: '/v1/circuits', headers: asAdmin });
    expect([res.statusCode, res.json().error.code]).toEqual([404, 'not_found']);
    expect((await bare.inject({ url: '/' })).statusCode).toBe(200);
    await bare.close();
  });
});
