import { sql } from 'kysely';
import type { Db } from './db.js';
import { readPosition } from './store.js';
import { MEASURED_TYPES, STAGE_INPUTS, type CommittedEvent } from './metrics-events.js';

/** Committed events read per statement: a page is a few hundred KiB at most. */
const PAGE = 2000;

interface Row {
  seq: number | string;
  type: string;
  tenant: string;
  service: string;
  at: Date;
  layer: string | null;
  code: string | null;
  embedding_model: string | null;
  request_id: string | null;
  requested_model: string | null;
  model: string | null;
  priority: string | null;
  variant: string | null;
  feature: string | null;
  received_at: Date | null;
  cost_usd: string | null;
  saved_usd: string | null;
  embedding_usd: string | null;
  cache_kind: string | null;
  previous_type: string | null;
  previous_at: Date | null;
}

/** Follows what the projection committed, each event once (see followCommitted). */
export interface CommittedFollower {
  /**
   * Reads every event committed since the last read, in sequence order, and hands each measured
   * one to `onEvent`. Calls run one at a time; a call made while one runs gets a read that starts
   * after it, so what was committed before the call is counted when it resolves.
   */
  sync(): Promise<void>;
  /** The last sequence read. */
  cursor(): number;
}

/**
 * Follows the `events` table from `from` (the position the ledger had reached when the metrics
 * started), up to the projection's stored position. Rows and position commit together, so an
 * event is counted exactly once however often the stream delivered it: a redelivery is skipped by
 * the projection before it writes, and the follower reads each sequence once. A dead letter an
 * operator sends back (below the position) and events projected before the process started are
 * not counted. Each event comes with its request's row as the projection left it (the cost and
 * savings it computed) and the request's earlier stage event (for the hop durations), through the
 * `events (request_id, seq)` index.
 *
 * @example
 * const follower = followCommitted(db, LEDGER_POSITION, await readPosition(db, LEDGER_POSITION), (e) => record(measure(e)));
 * await follower.sync();
 */
export function followCommitted(db: Db, positionName: string, from: number, onEvent: (e: CommittedEvent) => void, pageSize = PAGE): CommittedFollower {
  let cursor = from;
  let idle: Promise<void> = Promise.resolve();
  let queued: Promise<void> | undefined;

  const step = async () => {
    // read first: every row at or below the position it reads is already committed
    const bound = await readPosition(db, positionName);
    while (cursor < bound) {
      const rows = await readPage(db, cursor, bound, pageSize);
      for (const r of rows) onEvent(toCommitted(r));
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

async function readPage(db: Db, after: number, upTo: number, limit: number): Promise<Row[]> {
  const measured = sql.join(MEASURED_TYPES.map((t) => sql.lit(t)));
  const inputs = sql.join(STAGE_INPUTS.map((t) => sql.lit(t)));
  const { rows } = await sql<Row>`
    select e.seq, e.type, e.tenant, e.service, e.at,
      e.data->>'layer' as layer, e.data->>'code' as code, e.data->'embedding'->>'model' as embedding_model,
      r.request_id, r.requested_model, r.model, r.priority, r.variant, r.feature, r.received_at,
      r.cost_usd, r.saved_usd, r.embedding_usd, r.cache_kind,
      p.type as previous_type, p.at as previous_at
    from events e
    left join requests r on r.request_id = e.request_id
    left join lateral (
      select type, at from events
      where request_id = e.request_id and seq < e.seq and type in (${inputs})
      order by seq desc limit 1
    ) p on true
    where e.seq > ${after} and e.seq <= ${upTo} and e.type in (${measured})
    order by e.seq
    limit ${limit}`.execute(db);
  return rows;
}

function toCommitted(r: Row): CommittedEvent {
  return {
    seq: Number(r.seq),
    type: r.type,
    tenant: r.tenant,
    service: r.service,
    at: r.at.getTime(),
    layer: r.layer,
    code: r.code,
    embeddingModel: r.embedding_model,
    request:
      r.request_id === null
        ? null
        : {
            requestedModel: r.requested_model,
            model: r.model,
            lane: r.priority,
            variant: r.variant,
            feature: r.feature,
            receivedAt: r.received_at!.getTime(),
            costUsd: r.cost_usd ?? '0',
            savedUsd: r.saved_usd ?? '0',
            embeddingUsd: r.embedding_usd ?? '0',
            cacheKind: r.cache_kind,
          },
    previous: r.previous_type === null ? null : { type: r.previous_type, at: r.previous_at!.getTime() },
  };
}
