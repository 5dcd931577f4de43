import { sql } from 'kysely';
import type { Logger } from '@sluice/telemetry';
import { parseEvent } from '@sluice/contracts';
import type { Db } from './db.js';
import { mergeUpserts, project, type PriceOf, type Projection } from './project.js';
import { insertTimeline, lockPosition, savePosition, upsertRequests } from './writes.js';

/** A message of the event stream: its sequence and its bytes. */
export interface RawEvent {
  seq: number;
  data: Uint8Array;
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
  stream: StreamReader;
  log: Logger;
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
    let malformed = 0;
    for (const m of ordered) {
      try {
        projections.push(project(m.seq, parseEvent(m.data), deps.priceOf));
      } catch (err) {
        // counted as seen, so it is never retried: a malformed event will not parse next time either
        malformed++;
        deps.log.error({ err, seq: m.seq }, 'skipping malformed event');
      }
    }
    // rows travel as one JSON document a statement (writes.ts), so no parameter limit splits a batch
    if (projections.length) await insertTimeline(trx, projections.map((p) => p.event));
    await upsertRequests(trx, mergeUpserts(projections.flatMap((p) => (p.request ? [p.request] : []))));
    const position = ordered.length ? ordered[ordered.length - 1]!.seq : from;
    if (position !== from) await savePosition(trx, deps.name, position);
    return { position, applied: projections.length, skipped: messages.length - fresh.length, malformed, filled };
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

/** The sequence the projections reached (0 before the first batch). */
export async function readPosition(db: Db, name: string): Promise<number> {
  const row = await db.selectFrom('ledger_position').select('seq').where('name', '=', name).executeTakeFirst();
  return row ? Number(row.seq) : 0;
}

/** Empties the projections and sets the position back to 0, in one transaction, for a replay. */
export async function truncateProjections(db: Db, name: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await sql`truncate table events, requests`.execute(trx);
    await trx.insertInto('ledger_position').values({ name, seq: 0 }).onConflict((oc) => oc.column('name').doUpdateSet({ seq: 0 })).execute();
  });
}
