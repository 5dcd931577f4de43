import type { FastifyInstance } from 'fastify';
import type { JetStreamManager } from '@nats-io/jetstream';
import { sql } from 'kysely';
import { invokerConsumer, LANES, laneSpecs, Topology, type Priority, type SluiceConfig } from '@sluice/contracts';
import type { Db } from './db.js';

/** What JetStream says of one lane's invoker consumer. */
interface ConsumerDepth {
  /** Requests waiting in the stream, not yet taken by any invoker. */
  pending: number;
  /** Taken and not yet acked: calls running, and the few an invoker holds for its next free slot. */
  ackPending: number;
}

/** A lane durable's depth, or undefined when it does not exist (no invoker has started yet). */
export type LaneDepth = (durable: string) => Promise<ConsumerDepth | undefined>;

/** The depth of a durable of the event stream, by consumer info (one JetStream API request). */
export function consumerDepth(jsm: JetStreamManager): LaneDepth {
  return async (durable) => {
    try {
      const info = await jsm.consumers.info(Topology.stream.name, durable);
      return { pending: info.num_pending, ackPending: info.num_ack_pending };
    } catch {
      return undefined;
    }
  };
}

/** How many of the latest events the service time is averaged over (a primary-key range, whatever the table's size). */
const SERVICE_WINDOW_EVENTS = 5_000;

export interface LanesDeps {
  db: Db;
  config: () => SluiceConfig;
  depth: LaneDepth;
}

interface LaneReport {
  lane: Priority;
  durable: string;
  pending: number;
  ackPending: number;
  share: number;
  maxConcurrency: number | null;
  /** Slots the estimate counts on: the lane's guaranteed share of one invoker's slots, at least 1, at most its cap. */
  slots: number;
  /** pending × serviceMs / slots; null when no upstream call was seen recently to time. */
  estimatedWaitMs: number | null;
}

/**
 * `GET /v1/lanes` (admin keys): each priority lane's depth from JetStream and an estimated wait
 * for a request joining it now: pending × the mean upstream call time (chat.completed's
 * `upstreamLatencyMs` over the latest SERVICE_WINDOW_EVENTS events) / the lane's guaranteed slots
 * on one invoker replica. Pessimistic where lanes borrow unused slots or there are several
 * invoker replicas; it does not know either.
 */
export function lanesRoute(app: FastifyInstance, deps: LanesDeps): void {
  app.get('/v1/lanes', async () => {
    const config = deps.config();
    const specs = laneSpecs(config);
    const [service, depths] = await Promise.all([meanServiceMs(deps.db), Promise.all(LANES.map((l) => deps.depth(invokerConsumer(l).durable)))]);
    const data = LANES.map((lane, i): LaneReport => {
      const spec = specs[lane];
      const depth = depths[i] ?? { pending: 0, ackPending: 0 };
      const slots = laneSlots(spec.share, spec.maxConcurrency, config.invoker.concurrency);
      return {
        lane,
        durable: invokerConsumer(lane).durable,
        ...depth,
        share: spec.share,
        maxConcurrency: spec.maxConcurrency ?? null,
        slots,
        estimatedWaitMs: service.meanMs === null ? null : Math.round((depth.pending * service.meanMs) / slots),
      };
    });
    return { object: 'list', slotsPerInvoker: config.invoker.concurrency, serviceMs: service.meanMs, serviceSamples: service.samples, data };
  });
}

/** A lane's guaranteed slots of one invoker, at least one (a share of 0 still gets borrowed slots), at most its cap. */
export function laneSlots(share: number, maxConcurrency: number | undefined, concurrency: number): number {
  return Math.min(maxConcurrency ?? Infinity, Math.max(1, share * concurrency));
}

/** Mean upstream call time of the answers among the latest events (static and cached answers made no call). */
async function meanServiceMs(db: Db): Promise<{ meanMs: number | null; samples: number }> {
  const row = await sql<{ mean: number | string | null; n: number | string }>`
    select avg((data->>'upstreamLatencyMs')::float8) as mean, count(*) as n
    from events
    where seq > (select coalesce(max(seq), 0) from events) - ${SERVICE_WINDOW_EVENTS}
      and type = 'chat.completed' and (data->>'attempts')::int > 0`.execute(db);
  const r = row.rows[0];
  const n = Number(r?.n ?? 0);
  return { meanMs: n > 0 && r?.mean !== null && r?.mean !== undefined ? Math.round(Number(r.mean)) : null, samples: n };
}
