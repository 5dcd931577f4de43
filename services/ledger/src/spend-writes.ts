import { sql, type Kysely, type Transaction } from 'kysely';
import type { BudgetSpend } from '@sluice/contracts';
import type { Database } from './db.js';
import type { CounterBudget } from './budgets.table.js';
import { formatUsd, usdUnits } from './money.js';
import { pgJson } from './pg-json.js';
import { firstEndings, foldSpend, spendValue, type Counter, type Ended, type Reserved, type Settled } from './spend.js';

type Trx = Transaction<Database>;

/** A budget window's spend after a batch, for `sluice_budgets`. */
export interface SpendChange {
  budgetKey: string;
  windowId: string;
  spend: BudgetSpend;
}

export interface SpendResult {
  changed: SpendChange[];
  /** Alerts the batch put in the outbox. */
  alerts: number;
  /** Reservations the batch stored and settled: after commit, what moves `OpenReservations`. */
  opened: number;
  settled: number;
}

const NOTHING: SpendResult = { changed: [], alerts: 0, opened: 0, settled: 0 };

/**
 * How many reservations are open (requests admitted against budgets and not ended), as this
 * process knows it: counted at start, moved after each commit. While it is 0, a batch's endings
 * cost no statement; without budgets in the config it stays 0, and the ledger pays nothing for them.
 */
export interface OpenReservations {
  count: number;
}

/** Counts the open reservations (at start). */
export async function countOpen(db: Kysely<Database>): Promise<OpenReservations> {
  const row = await db
    .selectFrom('budget_reservations')
    .select((eb) => eb.fn.countAll<string | number>().as('n'))
    .where('settled_seq', 'is', null)
    .executeTakeFirst();
  return { count: Number(row?.n ?? 0) };
}

/**
 * A batch's budget work, in its transaction: stores the new reservations, settles the ones whose
 * requests ended (each once: a settled reservation is never settled again), folds both into the
 * counters (spend.ts) and writes them back as absolutes, and puts crossed thresholds in the
 * outbox. Nothing happens without reservations or endings, and endings cost nothing while no
 * reservation is open (`open`; undefined: not known, always look). `position` stamps the spend
 * written to KV after commit.
 */
export async function applySpend(trx: Trx, reserved: Reserved[], ended: Ended[], position: number, open?: OpenReservations): Promise<SpendResult> {
  const mayEnd = ended.length > 0 && (reserved.length > 0 || open === undefined || open.count > 0);
  if (reserved.length === 0 && !mayEnd) return NOTHING;
  const opened = reserved.length ? await insertReservations(trx, reserved) : 0;
  const settled = mayEnd ? await settle(trx, firstEndings(ended)) : [];
  const names = new Set([...reserved.flatMap((r) => r.counters.map((c) => c.counter)), ...settled.flatMap((s) => s.counters)]);
  if (names.size === 0) return { ...NOTHING, opened, settled: settled.length };
  const before = await readCounters(trx, [...names]);
  const { counters, crossings } = foldSpend(before, reserved, settled);
  await writeCounters(trx, counters);
  if (crossings.length) {
    await sql`
      insert into budget_alerts (alert_id, tenant, counter, threshold, crossed_seq, event)
      select alert_id, tenant, counter, threshold, crossed_seq, event
      from jsonb_to_recordset(${pgJson(
        crossings.map((c) => ({ alert_id: c.alertId, tenant: c.event.tenant, counter: c.counter, threshold: c.threshold, crossed_seq: c.seq, event: c.event })),
      )}::jsonb) as x(alert_id text, tenant text, counter text, threshold double precision, crossed_seq bigint, event jsonb)
      on conflict (alert_id) do nothing`.execute(trx);
  }
  return {
    changed: counters.map((c) => ({ budgetKey: c.budgetKey, windowId: c.windowId, spend: spendValue(c, position) })),
    alerts: crossings.length,
    opened,
    settled: settled.length,
  };
}

/** Stores reservations; returns how many were new. */
async function insertReservations(trx: Trx, reserved: Reserved[]): Promise<number> {
  const rows = reserved.map((r) => ({
    request_id: r.requestId,
    tenant: r.tenant,
    counters: r.counters.map((c) => c.counter),
    reserved_nanos: r.reservedNanos,
    admitted_seq: r.seq,
  }));
  // a request admitted twice (a redelivered limiter decision under another id) reserves once
  const { rows: inserted } = await sql<{ request_id: string }>`
    insert into budget_reservations (request_id, tenant, counters, reserved_nanos, admitted_seq)
    select request_id, tenant, counters, reserved_nanos, admitted_seq
    from jsonb_to_recordset(${pgJson(rows)}::jsonb) as x(request_id text, tenant text, counters jsonb, reserved_nanos bigint, admitted_seq bigint)
    on conflict (request_id) do nothing
    returning request_id`.execute(trx);
  return inserted.length;
}

/**
 * Marks the open reservations of ended requests settled; returns them with their endings. A
 * request's spend is its ending's cost plus what its row says its embedding calls cost
 * (`requests.embedding_usd`, written earlier in the same transaction): the semantic cache's
 * lookup is made after admission, so no reservation covered it, and its cost is known by the
 * time the request ends (cache.missed or cache.hit comes before every ending). Added once, here,
 * it is counted once however many events carried it.
 */
async function settle(trx: Trx, ended: Ended[]): Promise<Settled[]> {
  const byId = new Map(ended.map((e) => [e.requestId, e]));
  const rows = ended.map((e) => ({ request_id: e.requestId, seq: e.seq, cost_usd: e.costUsd }));
  const { rows: out } = await sql<{ request_id: string; counters: string[]; reserved_nanos: string | number; cost_usd: string }>`
    update budget_reservations r
    set settled_seq = x.seq, cost_usd = x.cost_usd + coalesce((select q.embedding_usd from requests q where q.request_id = x.request_id), 0)
    from jsonb_to_recordset(${pgJson(rows)}::jsonb) as x(request_id text, seq bigint, cost_usd numeric)
    where r.request_id = x.request_id and r.settled_seq is null
    returning r.request_id, r.counters, r.reserved_nanos, r.cost_usd::text as cost_usd`.execute(trx);
  return out
    .map((r) => ({ ...byId.get(r.request_id)!, costUsd: r.cost_usd, counters: r.counters, reservedNanos: Number(r.reserved_nanos) }))
    .sort((a, b) => a.seq - b.seq);
}

interface CounterRow {
  counter: string;
  budget_key: string;
  window_id: string;
  tenant: string;
  budget: CounterBudget | null;
  spent_usd: string;
  spent_nanos: string | number;
  settled_nanos: string | number;
  requests: number;
  alerted: number[];
  updated_seq: string | number;
}

/** The stored counters among `names`, by name. */
async function readCounters(trx: Trx, names: string[]): Promise<Map<string, Counter>> {
  const { rows } = await sql<CounterRow>`
    select counter, budget_key, window_id, tenant, budget, spent_usd::text as spent_usd, spent_nanos, settled_nanos, requests, alerted, updated_seq
    from budget_counters where counter in (select jsonb_array_elements_text(${pgJson(names)}::jsonb))`.execute(trx);
  return new Map(rows.map((r) => [r.counter, fromRow(r)]));
}

function fromRow(r: CounterRow): Counter {
  return {
    counter: r.counter,
    budgetKey: r.budget_key,
    windowId: r.window_id,
    tenant: r.tenant,
    budget: r.budget,
    spentUnits: usdUnits(r.spent_usd),
    spentNanos: BigInt(r.spent_nanos),
    settledNanos: BigInt(r.settled_nanos),
    requests: r.requests,
    alerted: r.alerted,
    updatedSeq: Number(r.updated_seq),
  };
}

async function writeCounters(trx: Trx, counters: Counter[]): Promise<void> {
  const rows = counters.map((c) => ({
    counter: c.counter,
    budget_key: c.budgetKey,
    window_id: c.windowId,
    tenant: c.tenant,
    budget: c.budget,
    spent_usd: formatUsd(c.spentUnits),
    // bigints travel as decimal strings; the database reads them back as bigint
    spent_nanos: c.spentNanos.toString(),
    settled_nanos: c.settledNanos.toString(),
    requests: c.requests,
    alerted: c.alerted,
    updated_seq: c.updatedSeq,
  }));
  await sql`
    insert into budget_counters (counter, budget_key, window_id, tenant, budget, spent_usd, spent_nanos, settled_nanos, requests, alerted, updated_seq)
    select counter, budget_key, window_id, tenant, budget, spent_usd, spent_nanos, settled_nanos, requests, alerted, updated_seq
    from jsonb_to_recordset(${pgJson(rows)}::jsonb)
      as x(counter text, budget_key text, window_id text, tenant text, budget jsonb, spent_usd numeric, spent_nanos bigint, settled_nanos bigint,
           requests integer, alerted jsonb, updated_seq bigint)
    on conflict (counter) do update set
      budget = excluded.budget, spent_usd = excluded.spent_usd, spent_nanos = excluded.spent_nanos, settled_nanos = excluded.settled_nanos,
      requests = excluded.requests, alerted = excluded.alerted, updated_seq = excluded.updated_seq`.execute(trx);
}
