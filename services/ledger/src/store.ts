import { sql } from 'kysely';
import type { Logger } from '@sluice/telemetry';
import { makeEvent, parseEvent, SYSTEM_TENANT } from '@sluice/contracts';
import type { Db } from './db.js';
import { mergeUpserts, project, type PriceOf, type Projection } from './project.js';
import { insertTimeline, lockPosition, savePosition, upsertRequests } from './writes.js';
import { budgetChange, type BudgetsOf, type Ended, type Reserved } from './spend.js';
import { applySpend, type OpenReservations, type SpendResult } from './spend-writes.js';

/** A message of the event stream: its sequence and its bytes. */
export interface RawEvent {
  seq: number;
  data: Uint8Array;
  /** Where it was published, when known (it labels a parked event). */
  subject?: string;
}

/** Direct reads from the event stream, to fill sequences the consumer has not delivered (yet). */
export interface StreamReader {
  /** The oldest sequence still in the stream (older ones aged out). */
  firstSeq(): Promise<number>;
  /** One message; null when it was deleted. */
  read(seq: number): Promise<RawEvent | null>;
}

export interface BatchDeps {
  /** Name of the position row (one per projector). */
  name: string;
  priceOf: PriceOf;
  /** The budgets a request counts against (for their limits and alert thresholds); absent: spend is counted without alerts. */
  budgetsOf?: BudgetsOf;
  /** Open reservations as this process knows them (moved by the caller after commit); absent: endings always look. */
  open?: OpenReservations;
  stream: StreamReader;
  log: Logger;
  /**
   * Parks an event that will never parse (dead-letter stream + `event.parked`), inside the
   * batch's transaction, so the position passes it only once it is parked. Without it a
   * malformed event is only logged.
   */
  park?: (m: RawEvent, err: unknown) => Promise<void>;
}

export interface BatchResult {
  /** The sequence the projections reached. */
  position: number;
  applied: number;
  /** Already counted (a redelivery): seq at or below the stored position. */
  skipped: number;
  malformed: number;
  /** Read from the stream directly because the consumer had not delivered them yet. */
  filled: number;
  /** Budget counters the batch changed and alerts it put in the outbox (both acted on after commit). */
  spend: SpendResult;
}

/**
 * Applies a batch in one transaction: every event past the stored position, in sequence order,
 * then the new position. A replay counts nothing twice because the position moves with the rows.
 *
 * The position only ever advances over events that were applied: if the batch starts past
 * position+1 (after a restart the server delivers new messages before it redelivers the ones a
 * dead process held), the missing ones are read from the stream first. Without that, a later
 * batch would move the position past them and their redelivery would be skipped as a duplicate.
 * The position row is locked, so two ledgers sharing the consumer stay correct (if wasteful).
 *
 * @example
 * const r = await applyBatch(db, msgs.map((m) => ({ seq: m.seq, data: m.data })), deps);
 */
export async function applyBatch(db: Db, messages: RawEvent[], deps: BatchDeps): Promise<BatchResult> {
  return db.transaction().execute(async (trx) => {
    const from = await lockPosition(trx, deps.name);

    const fresh = [...new Map(messages.filter((m) => m.seq > from).map((m) => [m.seq, m])).values()].sort((a, b) => a.seq - b.seq);
    const ordered: RawEvent[] = [];
    let next = from + 1;
    let filled = 0;
    for (const m of fresh) {
      if (m.seq > next) {
        const gap = await readGap(deps, next, m.seq - 1);
        filled += gap.length;
        ordered.push(...gap);
      }
      ordered.push(m);
      next = m.seq + 1;
    }

    const projections: Projection[] = [];
    const reserved: Reserved[] = [];
    const ended: Ended[] = [];
    let malformed = 0;
    for (const m of ordered) {
      try {
        const e = parseEvent(m.data);
        const p = project(m.seq, e, deps.priceOf);
        const b = budgetChange(m.seq, e, p.request?.update?.cost_usd, deps.budgetsOf);
        projections.push(p);
        if (b.reserved) reserved.push(b.reserved);
        if (b.ended) ended.push(b.ended);
      } catch (err) {
        // counted as seen, so it is never retried: a malformed event will not parse next time either
        malformed++;
        deps.log.error({ err, seq: m.seq }, 'parking malformed event');
        await deps.park?.(m, err);
      }
    }
    // rows travel as one JSON document a statement (writes.ts), so no parameter limit splits a batch
    if (projections.length)
      await insertTimeline(
        trx,
        projections.map((p) => p.event),
      );
    await upsertRequests(trx, mergeUpserts(projections.flatMap((p) => (p.request ? [p.request] : []))));
    const position = ordered.length ? ordered[ordered.length - 1]!.seq : from;
    const spend = await applySpend(trx, reserved, ended, position, deps.open);
    if (position !== from) await savePosition(trx, deps.name, position);
    return { position, applied: projections.length, skipped: messages.length - fresh.length, malformed, filled, spend };
  });
}

async function readGap(deps: BatchDeps, from: number, to: number): Promise<RawEvent[]> {
  const first = await deps.stream.firstSeq();
  if (first > from) {
    deps.log.warn({ from, to: Math.min(to, first - 1) }, 'events aged out of the stream before the ledger saw them');
    from = first;
  }
  const out: RawEvent[] = [];
  for (let seq = from; seq <= to; seq++) {
    const m = await deps.stream.read(seq);
    if (m) out.push(m);
  }
  if (to >= from) deps.log.info({ from, to, read: out.length }, 'filled a gap from the stream');
  return out;
}

/**
 * Moves the position past one event that cannot be projected (it was parked), in a transaction
 * of its own; a no-op unless the position stands just before it.
 */
export async function skipParked(db: Db, name: string, seq: number): Promise<void> {
  await db.transaction().execute(async (trx) => {
    if ((await lockPosition(trx, name)) === seq - 1) await savePosition(trx, name, seq);
  });
}

/**
 * Projects an event an operator sent back from the dead-letter stream, without moving the
 * position (it passed the event when it was parked). Projections set columns rather than add
 * to them, and timeline rows are keyed by sequence, so a replay applied twice counts once.
 */
export async function applyReplayed(db: Db, m: RawEvent, deps: Pick<BatchDeps, 'name' | 'priceOf' | 'budgetsOf'>): Promise<SpendResult> {
  const e = parseEvent(m.data);
  const p = project(m.seq, e, deps.priceOf);
  const b = budgetChange(m.seq, e, p.request?.update?.cost_usd, deps.budgetsOf);
  return db.transaction().execute(async (trx) => {
    await insertTimeline(trx, [p.event]);
    if (p.request) await upsertRequests(trx, [p.request]);
    // a reservation is stored once and settled once, so a replay applied twice counts once here too
    return applySpend(trx, b.reserved ? [b.reserved] : [], b.ended ? [b.ended] : [], await lockPosition(trx, deps.name));
  });
}

const ROLLBACK = new Error('probe rolled back');

/**
 * Whether the ledger can project a well-formed event right now: a made-up completion goes
 * through the same statements as a batch, in a transaction that is rolled back. When a batch
 * keeps failing, this tells an event that cannot be projected (the probe works) from a database
 * that cannot take any (down, a table missing, a disk full: the probe fails too, and the ledger
 * waits instead of parking good events).
 */
export async function projectionWorks(db: Db, priceOf: PriceOf): Promise<boolean> {
  const at = Date.now();
  const probe = makeEvent(
    'chat.completed',
    { requestId: '_probe', tenant: SYSTEM_TENANT, service: 'ledger', at, reason: 'probe' },
    {
      ctx: {
        request: {
          endpoint: 'chat.completions',
          model: 'probe',
          priority: 'standard',
          stream: false,
          cache: 'skip',
          promptTokens: 0,
          choices: 1,
          complexity: { score: 0, promptTokens: 0, turns: 0, code: false, keywords: [] },
        },
        frontDoor: 'nats',
        receivedAt: at,
        deadline: at,
      },
      answer: { model: 'probe', body: {}, usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 } },
      deployment: 'probe',
      attempts: 1,
      upstreamLatencyMs: 0,
    },
  );
  const p = project(-1, probe, priceOf);
  try {
    await db.transaction().execute(async (trx) => {
      await insertTimeline(trx, [p.event]);
      if (p.request) await upsertRequests(trx, [p.request]);
      throw ROLLBACK;
    });
    return false;
  } catch (e) {
    return e === ROLLBACK;
  }
}

/** The sequence the projections reached (0 before the first batch). */
export async function readPosition(db: Db, name: string): Promise<number> {
  const row = await db.selectFrom('ledger_position').select('seq').where('name', '=', name).executeTakeFirst();
  return row ? Number(row.seq) : 0;
}

/** Empties the projections and sets the position back to 0, in one transaction, for a replay. */
export async function truncateProjections(db: Db, name: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await sql`truncate table events, requests, budget_reservations, budget_counters, budget_alerts`.execute(trx);
    await trx
      .insertInto('ledger_position')
      .values({ name, seq: 0 })
      .onConflict((oc) => oc.column('name').doUpdateSet({ seq: 0 }))
      .execute();
  });
}
