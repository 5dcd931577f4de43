import { sql, type Transaction } from 'kysely';
import type { Database } from './db.js';
import type { RequestUpsert, TimelineRow } from './project.js';
import type { NewRequest } from './requests.table.js';
import { pgJson } from './pg-json.js';

// The statements of a batch's transaction. On PGlite every statement costs a fixed ~0.5-1.5 ms
// of CPU (six protocol round trips into WebAssembly), and each parameter is serialized in
// JavaScript and parsed again in WebAssembly, so rows travel as one JSON document a statement
// that the database expands (jsonb_to_recordset): about a fifth less CPU than a VALUES list with
// a parameter per column, measured on PGlite. Postgres runs the same SQL (not measured there).

type Trx = Transaction<Database>;
type RequestColumn = keyof NewRequest;

/**
 * Creates the position row if missing and locks it until the transaction ends, in one statement
 * (the upsert's no-op update takes the row lock), and returns the position. A second ledger
 * sharing the consumer waits here and then reads the position the first one committed.
 */
export async function lockPosition(trx: Trx, name: string): Promise<number> {
  const row = await trx
    .insertInto('ledger_position')
    .values({ name, seq: 0 })
    .onConflict((oc) => oc.column('name').doUpdateSet({ seq: (eb) => eb.ref('ledger_position.seq') }))
    .returning('seq')
    .executeTakeFirstOrThrow();
  return Number(row.seq);
}

/** Stores the sequence the projections reached (the row is locked by lockPosition). */
export async function savePosition(trx: Trx, name: string, seq: number): Promise<void> {
  await trx.updateTable('ledger_position').set({ seq }).where('name', '=', name).execute();
}

/** Inserts timeline rows; a row whose sequence is already there is left alone. */
export async function insertTimeline(trx: Trx, rows: TimelineRow[]): Promise<void> {
  await sql`
    insert into events (seq, request_id, type, tenant, service, at, reason, data)
    select seq, request_id, type, tenant, service, at, reason, data
    from jsonb_to_recordset(${pgJson(rows)}::jsonb)
      as x(seq bigint, request_id text, type text, tenant text, service text, at timestamptz, reason text, data jsonb)
    on conflict (seq) do nothing`.execute(trx);
}

/**
 * Writes request upserts (at most one per request: see mergeUpserts), one statement per shape:
 * the columns an insert names (the others take their defaults) and the columns its update sets.
 * A batch's upserts come in two or three shapes.
 */
export async function upsertRequests(trx: Trx, upserts: RequestUpsert[]): Promise<void> {
  for (const { insert, update, rows } of byShape(upserts)) {
    const cols = sql.join(insert.map((c) => sql.ref(c)));
    // an upsert's insert row carries its update's values, so `excluded` holds them
    const onConflict = update.length ? sql`do update set ${sql.join(update.map((c) => sql`${sql.ref(c)} = excluded.${sql.ref(c)}`))}` : sql`do nothing`;
    await sql`
      insert into requests (${cols})
      select ${cols} from jsonb_populate_recordset(null::requests, ${pgJson(rows)}::jsonb)
      on conflict (request_id) ${onConflict}`.execute(trx);
  }
}

interface Shape {
  insert: RequestColumn[];
  update: RequestColumn[];
  rows: NewRequest[];
}

function byShape(upserts: RequestUpsert[]): Iterable<Shape> {
  const columns = (row: object) =>
    Object.keys(row)
      .filter((k) => (row as Record<string, unknown>)[k] !== undefined)
      .sort() as RequestColumn[];
  const groups = new Map<string, Shape>();
  for (const u of upserts) {
    const insert = columns(u.insert);
    const update = columns(u.update ?? {});
    const key = `${insert.join(',')}|${update.join(',')}`;
    const g = groups.get(key) ?? groups.set(key, { insert, update, rows: [] }).get(key)!;
    g.rows.push(u.insert);
  }
  return groups.values();
}
