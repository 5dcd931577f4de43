// Budget spend and alerts against a real nats-server and PGlite: exact counters in the database
// and in sluice_budgets, each threshold alerted once, and never again after a rebuild or restart.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeJson, getJson, publishEvent } from '@sluice/bus';
import { eventually, minimalConfig, startTestBus, type TestBus } from '@sluice/bus/testing';
import { BudgetKeys, budgetsFor, parseConfig, Subjects, Topology, type AnyEvent, type BudgetSpend, type EventType } from '@sluice/contracts';
import { admitted, answer, chatRequest, completed, requestContext } from '@sluice/contracts/testing';
import type { Db } from './db.js';
import { migrate } from './migrate.js';
import { LEDGER_POSITION, resetLedgerConsumer, startProjector, type Projector } from './consumer.js';
import { readPosition, truncateProjections } from './store.js';
import { startSpendKv, type SpendKv } from './spend-kv.js';
import { startAlertOutbox, type AlertOutbox } from './alert-outbox.js';
import { costUsd, formatUsd, nanosCeil, usdUnits } from './money.js';
import type { BudgetsOf } from './spend.js';
import { budgetsReport, parseBudgetsQuery } from './budgets-report.js';
import { openTestDb } from './db.fixtures.js';

const PRICE = { inputPerMTok: 0.15, outputPerMTok: 0.6 };
const priceOf = (model: string) => (model === 'gpt-4o-mini' ? PRICE : undefined);
// 0.001 USD a day: requests of 1000 + 500 tokens cost 0.00045 each, so the 3rd crosses 100 %
const config = minimalConfig([{ id: 't1', budgets: [{ id: 'daily', scope: 'tenant', window: 'daily', limitUsd: 0.001 }] }]);
const AT = Date.now();

const openDb = (kind: 'PGlite' | 'Postgres') => openTestDb(kind, 'spend');

describe.each(['PGlite', 'Postgres'] as const)('ledger budget spend and alerts on %s', (kind) => {
  let env: TestBus;
  let opened: { db: Db; drop(): Promise<void> };
  let db: Db;
  let projector: Projector | undefined;
  let spendKv: SpendKv | undefined;
  let outbox: AlertOutbox | undefined;
  const alertsOnCore: string[] = [];

  const budgetsOf: BudgetsOf = (subject, at) => budgetsFor(env.control.config(), subject, at);
  const [ref] = budgetsFor(parseConfig(config), { tenant: 't1' }, AT);
  const counter = `${ref!.budgetKey}.${ref!.windowId}`;

  const request = (id: string, prompt: number, completion: number, reservedNanos = 600_000): AnyEvent[] => {
    const ctx = requestContext(chatRequest({ user: 'u1' }));
    return [
      admitted(id, 't1', { ctx, budgets: { counters: [counter], reservedNanos } }, { at: AT }),
      completed(id, 't1', { ctx, answer: answer('gpt-4o-mini', prompt, completion) }, { at: AT + 10 }),
    ];
  };
  const publishAll = async (events: AnyEvent[]) => {
    for (const e of events) await publishEvent(env.bus.js, e);
  };
  const start = async (opts: { sendAlerts?: boolean } = {}) => {
    spendKv = startSpendKv(env.buckets.budgets, env.log);
    outbox = startAlertOutbox({ db, bus: env.bus, kv: env.buckets.budgets, log: env.log });
    await spendKv.republish(db, await readPosition(db, LEDGER_POSITION), Date.now());
    if (opts.sendAlerts !== false) outbox.kick();
    const o = outbox;
    projector = await startProjector(env.bus, {
      db,
      priceOf,
      budgetsOf,
      log: env.log,
      batchSize: 3,
      lingerMs: 2,
      onSpend: (spend) => {
        spendKv!.changed(spend.changed);
        if (spend.alerts && opts.sendAlerts !== false) o.kick();
      },
    });
  };
  const stop = async () => {
    await projector?.stop();
    await spendKv?.stop();
    await outbox?.stop();
    projector = undefined;
  };
  const caughtUp = () =>
    eventually(async () => {
      const last = (await env.bus.jsm.streams.info(Topology.stream.name)).state.last_seq;
      return (await readPosition(db, LEDGER_POSITION)) >= last;
    }, 20_000);
  /** The events of a type stored in the stream (what subscribers of the stream get: duplicates dropped). */
  const stored = async (type: EventType): Promise<AnyEvent[]> => {
    const info = await env.bus.jsm.streams.info(Topology.stream.name);
    const out: AnyEvent[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await env.bus.jsm.streams.getMessage(Topology.stream.name, { seq }).catch(() => null);
      if (m && m.subject === Subjects.event(type, 't1')) out.push(m.json<AnyEvent>());
    }
    return out;
  };
  const counterRow = () => db.selectFrom('budget_counters').selectAll().where('counter', '=', counter).executeTakeFirstOrThrow();
  const spendInKv = async () => (await getJson<BudgetSpend>(env.buckets.budgets, BudgetKeys.spend(ref!.budgetKey, ref!.windowId)))?.value;

  beforeAll(async () => {
    env = await startTestBus(config, { name: 'ledger-spend' });
    env.bus.nc.subscribe(Subjects.alerts('t1'), { callback: (_e, m) => void alertsOnCore.push(m.string()) });
    opened = await openDb(kind);
    db = opened.db;
    await migrate(db);
  });
  afterAll(async () => {
    await stop();
    await opened?.drop();
    await env?.stop();
  });

  it('counts each ended request exactly, in the database and in sluice_budgets, and alerts each threshold once', async () => {
    await start();
    // 1000 + 500 tokens: 0.00045 USD; 7 + 3 tokens: 0.00000285 USD (2850 nano-USD exactly); 1 + 0: 0.00000015
    await publishAll([...request('r1', 1000, 500), ...request('r2', 7, 3), ...request('r3', 1, 0, 1)]);
    await caughtUp();
    const exact = ['0.00045', '0.00000285', '0.00000015'];
    expect(exact).toEqual([costUsd(1000, 500, PRICE), costUsd(7, 3, PRICE), costUsd(1, 0, PRICE)]);
    const spentUsd = formatUsd(exact.reduce((s, c) => s + usdUnits(c), 0n));
    const spentNanos = exact.reduce((s, c) => s + nanosCeil(c), 0n);
    const row = await counterRow();
    expect({
      spent: formatUsd(usdUnits(String(row.spent_usd))),
      nanos: BigInt(row.spent_nanos),
      settled: Number(row.settled_nanos),
      requests: row.requests,
    }).toEqual({
      spent: spentUsd,
      nanos: spentNanos,
      settled: 1_200_001,
      requests: 3,
    });
    await spendKv!.flushed();
    expect(await spendInKv()).toEqual({ spentNanos: Number(spentNanos), settledNanos: 1_200_001, spentUsd, seq: expect.any(Number) });
    // 0.0004530 of 0.001: nothing crossed yet
    expect(await stored('budget.threshold_crossed')).toEqual([]);

    await publishAll([...request('r4', 1000, 500), ...request('r5', 1000, 500)]);
    await caughtUp();
    await outbox!.idle();
    const alerts = await eventually(async () => {
      const a = await stored('budget.threshold_crossed');
      return a.length === 4 && a;
    });
    expect(alerts.map((a) => [a.id, (a.data as { spentUsd: string }).spentUsd])).toEqual([
      ['alert.t1.daily.' + ref!.windowId + '.500:budget.threshold_crossed', '0.000903'],
      ['alert.t1.daily.' + ref!.windowId + '.750:budget.threshold_crossed', '0.000903'],
      ['alert.t1.daily.' + ref!.windowId + '.900:budget.threshold_crossed', '0.000903'],
      ['alert.t1.daily.' + ref!.windowId + '.1000:budget.threshold_crossed', '0.001353'],
    ]);
    await eventually(() => alertsOnCore.length === 4);
    expect(alertsOnCore.map((j) => JSON.parse(j))).toEqual(alerts);
    expect((await db.selectFrom('budget_alerts').select('sent_at').execute()).every((r) => r.sent_at !== null)).toBe(true);
    await stop();
  });

  it('reports each budget window on GET /v1/budgets: exact spend, what is in flight, the alerts sent', async () => {
    await start();
    // r-report admitted and not ended: its reservation is in flight
    await publishAll([request('r-report', 1, 1, 250_000)[0]!]);
    await caughtUp();
    const { budgets } = await budgetsReport(db, { tenant: 't1', past: false }, Date.now());
    expect(budgets).toEqual([
      {
        tenant: 't1',
        budget: 'daily',
        scope: 'tenant',
        budgetKey: ref!.budgetKey,
        window: 'daily',
        windowId: ref!.windowId,
        resetsAt: new Date(ref!.resetsAt).toISOString(),
        action: 'refuse',
        limitUsd: 0.001,
        spentUsd: '0.001353',
        spentFraction: 1.353,
        inFlightUsd: 0.00025,
        requests: 5,
        alerted: [0.5, 0.75, 0.9, 1],
      },
    ]);
    // another tenant's view holds none of it; a window that has reset shows only with past=true
    expect((await budgetsReport(db, { tenant: 't2', past: false }, Date.now())).budgets).toEqual([]);
    expect((await budgetsReport(db, { past: false }, ref!.resetsAt + 1)).budgets).toEqual([]);
    expect((await budgetsReport(db, { past: true }, ref!.resetsAt + 1)).budgets).toHaveLength(1);
    expect(() => parseBudgetsQuery({ past: 'yes' })).toThrow(/past takes true or false/);
    // r-report ends: nothing in flight any more
    await publishAll([request('r-report', 1, 1, 250_000)[1]!]);
    await caughtUp();
    expect((await budgetsReport(db, { tenant: 't1', past: false }, Date.now())).budgets[0]!.inFlightUsd).toBe(0);
    await stop();
  });

  it('settles a request once, whatever ends it twice, and counts a request without a reservation nowhere', async () => {
    await start();
    const before = await counterRow();
    const ctx = requestContext(chatRequest({ user: 'u1' }));
    await publishAll([
      ...request('r6', 1000, 500),
      // a second terminal event of r6 and a request that reserved nothing
      completed('r6', 't1', { ctx, answer: answer('gpt-4o-mini', 5000, 5000) }, { at: AT + 20, suffix: 'again' }),
      completed('other', 't1', { ctx, answer: answer('gpt-4o-mini', 5000, 5000) }, { at: AT + 20 }),
    ]);
    await caughtUp();
    const after = await counterRow();
    expect(BigInt(after.spent_nanos) - BigInt(before.spent_nanos)).toBe(450_000n);
    expect(after.requests - before.requests).toBe(1);
    const open = await db.selectFrom('budget_reservations').select('request_id').where('settled_seq', 'is', null).execute();
    expect(open).toEqual([]);
    await stop();
  });

  it('settles a reservation left open across a restart', async () => {
    const [admit, done] = request('r8', 10, 10);
    await start();
    const before = await counterRow();
    await publishAll([admit!]);
    await caughtUp();
    await stop();
    await start();
    await publishAll([done!]);
    await caughtUp();
    const after = await counterRow();
    expect(after.requests - before.requests).toBe(1);
    expect(BigInt(after.spent_nanos) - BigInt(before.spent_nanos)).toBe(nanosCeil(costUsd(10, 10, PRICE)));
    expect(await db.selectFrom('budget_reservations').select('request_id').where('settled_seq', 'is', null).execute()).toEqual([]);
    await stop();
  });

  it('rebuilt by replay, gives the same numbers and sends no alert again', async () => {
    const before = await counterRow();
    const kvBefore = await spendInKv();
    const storedBefore = (await stored('budget.threshold_crossed')).length;
    const coreBefore = alertsOnCore.length;

    await truncateProjections(db, LEDGER_POSITION);
    await resetLedgerConsumer(env.bus.jsm);
    await start();
    await caughtUp();
    await outbox!.idle();
    await spendKv!.flushed();

    const after = await counterRow();
    expect({ ...after, updated_seq: 0 }).toEqual({ ...before, updated_seq: 0 });
    expect(await db.selectFrom('budget_alerts').select(['alert_id', 'sent_at']).execute()).toHaveLength(4);
    expect((await db.selectFrom('budget_alerts').select('sent_at').execute()).every((r) => r.sent_at !== null)).toBe(true);
    expect((await stored('budget.threshold_crossed')).length).toBe(storedBefore);
    expect(alertsOnCore.length).toBe(coreBefore);
    // sluice_budgets was never set back below what the limiters already had
    expect({ ...(await spendInKv()), seq: 0 }).toEqual({ ...kvBefore, seq: 0 });
    await stop();
  });

  it('after a crash between commit and publish, sends the waiting alert on restart, once', async () => {
    // a second budget window's alerts are decided while nothing sends them (the crash)
    const ctx = requestContext(chatRequest({ user: 'u1' }));
    const next = `t1.daily.2099-01-01`;
    await start({ sendAlerts: false });
    await publishAll([
      admitted('r7', 't1', { ctx, budgets: { counters: [next], reservedNanos: 1 } }, { at: AT }),
      completed('r7', 't1', { ctx, answer: answer('gpt-4o-mini', 1000, 500) }, { at: AT + 10 }),
    ]);
    await caughtUp();
    await stop();
    // the window is not in the config (2099): no budget, so no alert; give the row one to alert as in a crash
    const waiting = await db.selectFrom('budget_alerts').selectAll().where('sent_at', 'is', null).execute();
    expect(waiting).toEqual([]);

    // the realistic crash: an alert in the outbox, its marker left at `sending`, nothing published
    const [sent] = await stored('budget.threshold_crossed');
    const event = { ...sent!, id: 'alert.t1.daily.2099-01-01.500:budget.threshold_crossed', requestId: 'alert.t1.daily.2099-01-01.500' };
    await db
      .insertInto('budget_alerts')
      .values({ alert_id: event.requestId, tenant: 't1', counter: next, threshold: 0.5, crossed_seq: 1, event: JSON.stringify(event) })
      .execute();
    await env.buckets.budgets.create(event.requestId, encodeJson({ state: 'sending', eventId: event.id, at: Date.now() }));
    const storedBefore = (await stored('budget.threshold_crossed')).length;

    await start();
    await eventually(async () => (await stored('budget.threshold_crossed')).length === storedBefore + 1);
    await outbox!.idle();
    expect((await getJson<{ state: string }>(env.buckets.budgets, event.requestId))?.value.state).toBe('sent');
    await stop();

    // restarted again with the row unsent (as if the update was lost): the marker says sent
    await db
      .updateTable('budget_alerts')
      .set({ sent_at: null as unknown as Date })
      .where('alert_id', '=', event.requestId)
      .execute();
    const coreBefore = alertsOnCore.length;
    await start();
    await eventually(async () => (await db.selectFrom('budget_alerts').select('sent_at').where('alert_id', '=', event.requestId).executeTakeFirst())?.sent_at);
    expect((await stored('budget.threshold_crossed')).length).toBe(storedBefore + 1);
    expect(alertsOnCore.length).toBe(coreBefore);
    await stop();
  });
});
