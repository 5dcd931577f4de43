// The web console in real headless Chromium (Debian's chromium, driven by playwright-core),
// against the ledger alone: its HTTP app in this process on a database of its own on the test
// Postgres, fed known events through a private nats-server's stream by its own projector, with
// a degrade state and a circuit record in the buckets. No other service runs.
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { encodeJson, publishEvent, putDegrade } from '@sluice/bus';
import { eventually, startTestBus, type TestBus } from '@sluice/bus/testing';
import { budgetsFor, LANES, type AnyEvent } from '@sluice/contracts';
import { buildApp } from '../services/ledger/src/http.js';
import { migrate } from '../services/ledger/src/migrate.js';
import { LEDGER_POSITION, startProjector, streamLastSeq, type Projector } from '../services/ledger/src/consumer.js';
import { readPosition } from '../services/ledger/src/store.js';
import { consumerDepth } from '../services/ledger/src/lanes.js';
import { openTestDb } from '../services/ledger/src/db.fixtures.js';
import { ADMIN_KEY, READ_KEYS, readersConfig } from '../services/ledger/src/auth-fixtures.js';
import { cachedRequest, completedRequest, failedRequest, priceOf, throttledRequest } from '../services/ledger/src/fixtures.js';

const CHROMIUM = process.env.SLUICE_CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOT = fileURLToPath(new URL('./artifacts/console.png', import.meta.url));
const HOUR = 3_600_000;

const now = Date.now();
const config = readersConfig({ acme: { budgets: [{ id: 'monthly', scope: 'tenant', window: 'monthly', limitUsd: 0.002 }] } });

/** A request's admission as the limiter makes it for acme: counted against its monthly budget's window (seeded seconds ago, so the window is current). */
function inBudget(events: AnyEvent[]): AnyEvent[] {
  return events.map((e) => {
    if (e.type !== 'chat.admitted') return e;
    const counters = budgetsFor(config, { tenant: e.tenant }, e.at).map((b) => `${b.budgetKey}.${b.windowId}`);
    return { ...e, data: { ...e.data, budgets: { counters, reservedNanos: 1_000_000 } } };
  });
}
// acme: two answers of gpt-4o-mini (1000 in, 500 out: $0.00045 each) and a cached one (free);
// beta: gpt-4o (2000 in, 1000 out: $0.015) yesterday, gpt-4o-mini two days ago, a failure and a throttle
const seeded: Record<string, AnyEvent[]> = {
  req_console_acme_00001: inBudget(completedRequest({ id: 'req_console_acme_00001', tenant: 'acme', at: now - 3000 }, 'gpt-4o-mini', 1000, 500, 120)),
  req_console_acme_00002: inBudget(
    completedRequest({ id: 'req_console_acme_00002', tenant: 'acme', at: now - 2000, feature: 'search' }, 'gpt-4o-mini', 1000, 500, 80),
  ),
  req_console_acme_00003: cachedRequest({ id: 'req_console_acme_00003', tenant: 'acme', at: now - 1000 }, 'gpt-4o-mini', 1000, 500, 4),
  req_console_beta_00001: onVariant(completedRequest({ id: 'req_console_beta_00001', tenant: 'beta', at: now - 26 * HOUR }, 'gpt-4o', 2000, 1000, 300)),
  req_console_beta_00002: completedRequest({ id: 'req_console_beta_00002', tenant: 'beta', at: now - 50 * HOUR }, 'gpt-4o-mini', 1000, 500, 90),
  req_console_beta_00003: failedRequest({ id: 'req_console_beta_00003', tenant: 'beta', at: now - HOUR / 5 }, 40),
  req_console_beta_00004: throttledRequest({ id: 'req_console_beta_00004', tenant: 'beta', at: now - HOUR / 6 }, 2),
};
/** A request the router sent to variant b of canary new-model: its context says so from then on. */
function onVariant(events: AnyEvent[]): AnyEvent[] {
  return events.map((e) => {
    const data = e.data as { ctx?: object };
    return data.ctx ? ({ ...e, data: { ...data, ctx: { ...data.ctx, variant: { canary: 'new-model', name: 'b' } } } } as AnyEvent) : e;
  });
}
const COST = { acme: 0.0009, beta: 0.01545 };

let testBus: TestBus;
let testDb: Awaited<ReturnType<typeof openTestDb>>;
let projector: Projector;
let app: ReturnType<typeof buildApp>;
let base: string;
let browser: Browser;

beforeAll(async () => {
  testBus = await startTestBus(config, { name: 'console' });
  const { bus, buckets, control, log } = testBus;
  testDb = await openTestDb('Postgres', 'console');
  await migrate(testDb.db);
  for (const e of Object.values(seeded).flat()) await publishEvent(bus.js, e);
  await putDegrade(buckets.control, { level: 2, since: now, reason: 'test: 2 of 2 deployments open' });
  await buckets.circuits.put('d1', encodeJson({ state: 'open', failures: 5, openedAt: now, transitions: 1 }));
  projector = await startProjector(bus, { db: testDb.db, priceOf, budgetsOf: (subject, at) => budgetsFor(control.config(), subject, at), log, lingerMs: 2 });
  const last = await streamLastSeq(bus.jsm);
  await eventually(async () => (await readPosition(testDb.db, LEDGER_POSITION)) >= last, 15_000);
  await eventually(() => control.degrade().level === 2);

  app = buildApp({
    db: testDb.db,
    positionName: LEDGER_POSITION,
    config: () => control.config(),
    streamLastSeq: () => streamLastSeq(bus.jsm),
    laneDepth: consumerDepth(bus.jsm),
    live: { degrade: () => control.degrade(), circuits: buckets.circuits },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await projector?.stop();
  await testDb?.drop();
  await testBus?.stop();
});

/** A fresh tab (its own session storage) signed in with `key`. */
async function signIn(key: string): Promise<Page> {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('console', (m) => void (m.type() === 'error' && problems.push(m.text())));
  await page.goto(base);
  await page.getByLabel('Ledger key').fill(key);
  await page.getByRole('button', { name: 'Open the console' }).click();
  Object.assign(page, { problems });
  return page;
}

/** The texts of a table body's rows, cell by cell. */
const rowsOf = (page: Page, selector: string) =>
  page.$$eval(`${selector} tr`, (trs) => trs.map((tr) => [...tr.querySelectorAll('th, td')].map((c) => c.textContent?.trim() ?? '')));

describe('web console', () => {
  it('serves the page without a key, with a content security policy, and Chart.js from node_modules', async () => {
    const res = await fetch(base);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await res.text();
    const chart = /src="(\/console\/vendor\/chart-[\d.]+\.umd\.min\.js)"/.exec(html)?.[1];
    expect(chart).toBe('/console/vendor/chart-4.6.1.umd.min.js');
    expect((await fetch(`${base}${chart}`)).status).toBe(200);
    // the API still takes a key
    expect((await fetch(`${base}/v1/costs`)).status).toBe(401);
  });

  it('with the admin key: the chart and table show the seeded costs, SLOs, degrade level and circuits', async () => {
    const page = await signIn(ADMIN_KEY);
    await expect.poll(() => page.textContent('#who')).toContain('Signed in with an admin key');

    // the chart's own data: one stacked series per tenant, summing to what was seeded
    await page.waitForFunction(() => (globalThis as any).Chart?.getChart('costs-chart')?.data.datasets.length === 2);
    const series = await page.evaluate(() =>
      (globalThis as any).Chart.getChart('costs-chart').data.datasets.map((d: any) => ({
        label: d.label,
        usd: Math.round(d.data.reduce((a: number, b: number) => a + b, 0) * 1e6) / 1e6,
        days: d.data.length,
      })),
    );
    expect(series).toEqual([
      { label: 'acme', usd: COST.acme, days: 7 },
      { label: 'beta', usd: COST.beta, days: 7 },
    ]);
    const costRows = await rowsOf(page, '#costs-table tbody');
    expect(costRows.map((r) => [r[0], r[1], r[6]])).toEqual([
      ['acme', '3', '$0.000900'],
      ['beta', '4', '$0.015450'],
    ]);
    expect((await rowsOf(page, '#costs-table tfoot'))[0]![6]).toBe('$0.016350');

    // SLOs: the last hour's five requests; availability is of the calls tried (2 completed, 1 failed),
    // so a third of them failed: 333 times the 0.1 % a 99.9 % objective allows
    const burn = await rowsOf(page, '#burn tbody');
    expect(burn[0]).toEqual(['Last hour', '5', '66.667 %', '333.33×', '14.4×', 'burning too fast']);

    // live: the degrade level and the open circuit, then the circuit closing on a later refresh
    await expect.poll(() => page.textContent('#degrade')).toContain('2: cached answers only');
    await expect.poll(async () => (await rowsOf(page, '#circuits tbody'))[0]).toEqual(['d1', 'OPEN: calls refused', '5', expect.any(String), '—']);
    // acme's monthly budget of $0.002: its two answers spent $0.0009 (45 %)
    await expect
      .poll(async () => (await rowsOf(page, '#budgets-table tbody'))[0]?.slice(0, 6))
      .toEqual(['acme', 'monthly', expect.stringMatching(/^monthly /), '$0.002000', '$0.000900', '45.0 %']);
    // the lanes (no invoker runs: nothing waits) and beta's request on the canary's variant b
    expect((await rowsOf(page, '#lanes tbody')).map((r) => r.slice(0, 2))).toEqual(LANES.map((lane) => [lane, '0']));
    expect(await rowsOf(page, '#variants-table tbody')).toEqual([['new-model', 'b', '1', '1', '0', '0.000 %', '300.0', '300.0', '300.0', '$0.015000']]);
    mkdirSync(fileURLToPath(new URL('./artifacts/', import.meta.url)), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    await testBus.buckets.circuits.put('d1', encodeJson({ state: 'closed', failures: 0, openedAt: now, transitions: 2 }));
    await expect.poll(async () => (await rowsOf(page, '#circuits tbody'))[0]?.[1], { timeout: 8_000 }).toBe('closed');

    expect((page as any).problems).toEqual([]);
  });

  it('a request id shows its timeline in stream order', async () => {
    const page = await signIn(ADMIN_KEY);
    await page.getByLabel('Request id').fill('req_console_acme_00001');
    await page.getByRole('button', { name: 'Look up' }).click();
    await page.waitForSelector('#request-result:not([hidden])');
    const rows = await rowsOf(page, '#timeline tbody');
    expect(rows.map((r) => r[4])).toEqual(seeded.req_console_acme_00001!.map((e) => e.type));
    const seqs = rows.map((r) => Number(r[0]));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(await page.textContent('#request-facts')).toContain('completed');

    await page.getByLabel('Request id').fill('req_console_nobody_0001');
    await page.getByRole('button', { name: 'Look up' }).click();
    await expect.poll(() => page.textContent('#request-error')).toContain('The ledger has no request req_console_nobody_0001');
  });

  it("a tenant's read key sees its own tenant, not the circuits", async () => {
    const page = await signIn(READ_KEYS.acme);
    await expect.poll(() => page.textContent('#who')).toContain('the read key of tenant acme');
    await expect.poll(async () => (await rowsOf(page, '#costs-table tbody')).map((r) => r[0])).toEqual(['acme']);
    await expect.poll(async () => (await rowsOf(page, '#circuits tbody'))[0]).toEqual(['The circuits take an admin key.']);
  });

  it('a wrong key is refused with the reason, and the console stays closed', async () => {
    const page = await signIn('sk-not-a-ledger-key');
    await expect.poll(() => page.textContent('#sign-in-error')).toContain('The ledger refused the key');
    expect(await page.textContent('#sign-in-error')).toContain('neither an admin key nor a tenant read key');
    expect(await page.isHidden('#console')).toBe(true);
    expect(await page.evaluate(() => (globalThis as any).sessionStorage.length)).toBe(0);
  });
});
