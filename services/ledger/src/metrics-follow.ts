import { sql } from 'kysely';
import type { Db } from './db.js';
import { readPosition } from './store.js';
import { READ_TYPES, STAGE_INPUTS, TERMINAL_TYPES, type CommittedEvent } from './metrics-events.js';

/** Committed events read per statement: a page is a few hundred KiB at most. */
const PAGE = 2000;

/**
 * Requests whose last stage input is kept for the hops: those in flight, a few seconds' worth at
 * full load. Past it the oldest go (a request that never ended, or one that did in a parked event).
 */
const MAX_IN_FLIGHT = 100_000;

/** Whether an event needs its request's row: a terminal event (outcome, cost, savings), or a lookup that paid for an embedding (its cost). */
const needsRequest = (r: EventRow): r is EventRow & { request_id: string } =>
  r.request_id !== null && (TERMINAL_TYPES.has(r.type) || r.embedding_model !== null);

interface EventRow {
  seq: number | string;
  request_id: string | null;
  type: string;
  tenant: string;
  service: string;
  at: Date;
  layer: string | null;
  code: string | null;
  embedding_model: string | null;
}

interface RequestRow {
  request_id: string;
  requested_model: string | null;
  model: string | null;
  deployment: string | null;
  priority: string | null;
  variant: string | null;
  feature: string | null;
  received_at: Date;
  cost_usd: string;
  saved_usd: string;
  embedding_usd: string;
  cache_kind: string | null;
}

/** Follows what the projection committed, each event once (see followCommitted). */
export interface CommittedFollower {
  /**
   * Reads every event committed since the last read, in sequence order, and hands each one to
   * `onEvent`. Calls run one at a time; a call made while one runs gets a read that starts after
   * it, so what was committed before the call is counted when it resolves.
   */
  sync(): Promise<void>;
  /** The last sequence read. */
  cursor(): number;
}

/**
 * Follows the `events` table from `from` (the position the ledger had reached when the metrics
 * started) up to the projection's stored position. Rows and position commit together, so an
 * event is handed on exactly once however often the stream delivered it: a redelivery is skipped
 * by the projection before it writes, and the follower reads each sequence once. A dead letter an
 * operator sends back (below the position) and events projected before the follower started are
 * not read. A terminal event comes with its request's row as the projection left it (the cost and
 * savings it computed); every event of a request with the request's stage input before it, kept
 * in memory from the rows read (a request already in flight when the follower started has none).
 *
 * Costs: reading 2,000 requests' events (9,000 rows of 10,500) took the ledger 250-300 ms of CPU
 * on PGlite, about 30 % of what projecting them took (810-960 ms), and 110-160 ms on Postgres
 * (420-460 ms): the rows' transfer more than the SQL (a shared, loaded 2-core machine, so ranges).
 * measure() and recording are 10 µs a request of that. Nothing is read until the first collection.
 *
 * @example
 * const follower = followCommitted(db, LEDGER_POSITION, await readPosition(db, LEDGER_POSITION), (e) => measure(e).forEach(record));
 * await follower.sync();
 */
export function followCommitted(db: Db, positionName: string, from: number, onEvent: (e: CommittedEvent) => void, pageSize = PAGE): CommittedFollower {
  let cursor = from;
  let idle: Promise<void> = Promise.resolve();
  let queued: Promise<void> | undefined;
  const lastInput = new Map<string, { type: string; at: number }>();

  const handle = (r: EventRow, requests: Map<string, RequestRow>) => {
    const id = r.request_id;
    const e = toCommitted(r, needsRequest(r) ? requests.get(r.request_id) : undefined, id === null ? undefined : lastInput.get(id));
    onEvent(e);
    if (id === null) return;
    if (TERMINAL_TYPES.has(e.type)) {
      lastInput.delete(id);
    } else if (STAGE_INPUTS.has(e.type)) {
      lastInput.delete(id);
      lastInput.set(id, { type: e.type, at: e.at });
      if (lastInput.size > MAX_IN_FLIGHT) lastInput.delete(lastInput.keys().next().value!);
    }
  };

  const step = async () => {
    // read first: every row at or below the position it reads is already committed
    const bound = await readPosition(db, positionName);
    while (cursor < bound) {
      const rows = await readPage(db, cursor, bound, pageSize);
      const requests = await readRequests(db, rows);
      for (const r of rows) handle(r, requests);
      cursor = rows.length < pageSize ? bound : Number(rows[rows.length - 1]!.seq);
    }
  };

  return {
    sync() {
      queued ??= idle.then(() => {
        queued = undefined;
        return step();
      });
      const run = queued;
      idle = run.catch(() => undefined);
      return run;
    },
    cursor: () => cursor,
  };
}

// Two statements a page rather than a join: on PGlite each column of each row costs, and most
// rows need no request columns (a join made reading 40 % dearer, measured).
async function readPage(db: Db, after: number, upTo: number, limit: number): Promise<EventRow[]> {
  const { rows } = await sql<EventRow>`
    select seq, request_id, type, tenant, service, at,
      data->>'layer' as layer, data->>'code' as code, data->'embedding'->>'model' as embedding_model
    from events
    where seq > ${after} and seq <= ${upTo} and type in (${sql.join(READ_TYPES.map((t) => sql.lit(t)))})
    order by seq
    limit ${limit}`.execute(db);
  return rows;
}

/** The request rows of a page's events that need one, by request id. */
async function readRequests(db: Db, rows: EventRow[]): Promise<Map<string, RequestRow>> {
  const ids = [...new Set(rows.filter(needsRequest).map((r) => r.request_id))];
  if (ids.length === 0) return new Map();
  const found = await db
    .selectFrom('requests')
    .select([
      'request_id',
      'requested_model',
      'model',
      'deployment',
      'priority',
      'variant',
      'feature',
      'received_at',
      'cost_usd',
      'saved_usd',
      'embedding_usd',
      'cache_kind',
    ])
    .where(sql<boolean>`request_id = any(${ids}::text[])`)
    .execute();
  return new Map(found.map((r) => [r.request_id, r]));
}

function toCommitted(r: EventRow, request: RequestRow | undefined, previous: { type: string; at: number } | undefined): CommittedEvent {
  return {
    seq: Number(r.seq),
    type: r.type,
    tenant: r.tenant,
    service: r.service,
    at: r.at.getTime(),
    layer: r.layer,
    code: r.code,
    embeddingModel: r.embedding_model,
    request: request
      ? {
          requestedModel: request.requested_model,
          model: request.model,
          deployment: request.deployment,
          lane: request.priority,
          variant: request.variant,
          feature: request.feature,
          receivedAt: request.received_at.getTime(),
          costUsd: request.cost_usd,
          savedUsd: request.saved_usd,
          embeddingUsd: request.embedding_usd,
          cacheKind: request.cache_kind,
        }
      : null,
    previous: previous ?? null,
  };
}
