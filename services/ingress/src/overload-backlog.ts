import type { Bus } from '@sluice/bus';
import { Consumers, invokerConsumer, LANES, Topology } from '@sluice/contracts';
import type { Backlog } from './overload.js';

/**
 * The invoker's lanes a request waits in (the batch lane left out: the batch runner feeds it a
 * few lines per batch and pauses itself while the backlog is over its bound).
 */
const INVOKER_LANES: readonly string[] = LANES.filter((lane) => lane !== 'batch').map((lane) => invokerConsumer(lane).durable);
/** The request path's durables, first stage first: a request waits in one of them when the stage behind it cannot keep up. */
const BACKLOG_DURABLES = [Consumers.limiter.durable, Consumers.cacheLookup.durable, Consumers.router.durable, ...INVOKER_LANES];

const CONSUMER_NOT_FOUND = 10014;

/** A reading and what the drain rate of the next one is measured against. */
export interface BacklogReading extends Backlog {
  /** Deliveries the invoker's lanes have made so far (their `delivered.consumer_seq`, summed). */
  invokerDelivered: number;
}

/**
 * The request path's backlog now: `num_pending` summed over BACKLOG_DURABLES (one consumer-info
 * request each, at once; a durable that does not exist yet counts 0), and the invoker's take per
 * second since `previous`. Rejects when NATS does not answer (the caller then sheds nothing on it).
 */
export async function readBacklog({ jsm }: Pick<Bus, 'jsm'>, now: number, previous?: BacklogReading): Promise<BacklogReading> {
  const infos = await Promise.all(
    BACKLOG_DURABLES.map((durable) =>
      jsm.consumers.info(Topology.stream.name, durable).then(
        (info) => ({ durable, pending: info.num_pending, delivered: info.delivered.consumer_seq }),
        (err: unknown) => {
          if (isNotFound(err)) return { durable, pending: 0, delivered: 0 };
          throw err;
        },
      ),
    ),
  );
  const pending = infos.reduce((sum, i) => sum + i.pending, 0);
  const invokerDelivered = infos.filter((i) => INVOKER_LANES.includes(i.durable)).reduce((sum, i) => sum + i.delivered, 0);
  const reading: BacklogReading = { at: now, pending, invokerDelivered };
  if (previous && now > previous.at && invokerDelivered >= previous.invokerDelivered) {
    reading.drainPerSecond = ((invokerDelivered - previous.invokerDelivered) * 1000) / (now - previous.at);
  }
  return reading;
}

/** JetStream's "consumer not found" (JetStreamApiError's code 10014): the stage has not started yet. */
function isNotFound(err: unknown): boolean {
  return (err as { code?: unknown } | undefined)?.code === CONSUMER_NOT_FOUND;
}
