import { nanos } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { consumeReplays, park, type Bus } from '@sluice/bus';
import { Consumers, parseEvent, Subjects, Topology, type AnyEvent } from '@sluice/contracts';
import { tracingOn, type Logger } from '@sluice/telemetry';
import type { Db } from './db.js';
import type { PriceOf } from './project.js';
import type { BudgetsOf } from './spend.js';
import { countOpen, type SpendResult } from './spend-writes.js';
import { applyBatch, applyReplayed, projectionWorks, readPosition, skipParked, type BatchResult, type RawEvent, type StreamReader } from './store.js';
import { traceCommit } from './tracing.js';

const STREAM = Topology.stream.name;
const DURABLE = Consumers.ledger.durable;
/** Name of the ledger's row in `ledger_position` (the durable's name). */
export const LEDGER_POSITION = DURABLE;
/** Unacked messages the server lets the ledger hold: a few batches plus what arrives while one commits. */
const MAX_ACK_PENDING = 2000;
/**
 * Failed commits of a batch, while a probe event still projects, before the ledger looks for
 * the event that fails it; then as many tries of that event alone before it is parked. Through
 * an outage (the probe fails too) it retries for as long as it takes.
 */
const TRIES_BEFORE_PARKING = 3;

/**
 * Creates the ledger's durable consumer (every event, from the start of the stream) if missing.
 * Given the database's position, it also recreates it from the first event the database lacks
 * when it is ahead of the database (its acks say events were projected that this database never
 * saw: a new or restored database), or when it still acks each message on its own (created
 * before the ledger acked whole batches; the server cannot change a consumer's ack policy).
 *
 * The ack policy is All: the projector commits in sequence order, so one ack of a batch's last
 * message says everything up to it is projected. One ack a batch instead of one a message saves
 * the ledger and nats-server a few thousand small messages a second at full load.
 */
async function ensureLedgerConsumer(jsm: JetStreamManager, position?: number, log?: Logger): Promise<void> {
  const config = {
    durable_name: DURABLE,
    ack_policy: AckPolicy.All,
    deliver_policy: DeliverPolicy.All,
    filter_subject: Subjects.allEvents,
    max_ack_pending: MAX_ACK_PENDING,
    ack_wait: nanos(30_000),
    max_deliver: -1,
  };
  const info = await jsm.consumers.info(STREAM, DURABLE).catch(() => undefined);
  const ahead = info !== undefined && position !== undefined && info.ack_floor.stream_seq > position;
  const oldPolicy = info !== undefined && info.config.ack_policy !== AckPolicy.All;
  if (info && (ahead || oldPolicy)) {
    const reason = ahead ? 'ledger consumer is ahead of the database' : 'ledger consumer acks each message; moving it to ack-all';
    log?.warn(
      { consumerAckFloor: info.ack_floor.stream_seq, position, ackPolicy: info.config.ack_policy },
      `${reason}; recreating it from the database position`,
    );
    await jsm.consumers.delete(STREAM, DURABLE);
    await jsm.consumers.add(STREAM, position ? { ...config, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: position + 1 } : config);
  } else if (!info) {
    await jsm.consumers.add(STREAM, config);
  } else if (info.config.max_ack_pending !== MAX_ACK_PENDING) {
    await jsm.consumers.update(STREAM, DURABLE, { max_ack_pending: MAX_ACK_PENDING });
  }
}

/** Deletes and recreates the durable consumer, so it delivers the whole stream again. */
export async function resetLedgerConsumer(jsm: JetStreamManager): Promise<void> {
  await jsm.consumers.delete(STREAM, DURABLE).catch(() => undefined);
  await ensureLedgerConsumer(jsm);
}

/** Reads the event stream directly (for gaps) through the JetStream API. */
export function natsStreamReader(jsm: JetStreamManager): StreamReader {
  return {
    firstSeq: async () => (await jsm.streams.info(STREAM)).state.first_seq,
    read: async (seq) => {
      const m = await jsm.streams.getMessage(STREAM, { seq });
      return m ? { seq: m.seq, data: m.data, subject: m.subject } : null;
    },
  };
}

/** The last sequence in the event stream: where the ledger is headed. */
export async function streamLastSeq(jsm: JetStreamManager): Promise<number> {
  return (await jsm.streams.info(STREAM)).state.last_seq;
}

export interface ProjectorOptions {
  db: Db;
  priceOf: PriceOf;
  /** The budgets a request counts against, for their limits and alert thresholds (see BatchDeps). */
  budgetsOf?: BudgetsOf;
  /** Called after each commit that changed budget counters or put alerts in the outbox. */
  onSpend?: (result: SpendResult, position: number) => void;
  log: Logger;
  /** Most events per transaction. */
  batchSize?: number;
  /** How long to wait for more events before committing a short batch. */
  lingerMs?: number;
  /** First retry delay after a failed commit; doubles up to `retryMaxMs`. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Called after every committed batch. */
  onBatch?: (result: BatchResult) => void;
  /** Called when a commit failed and will be retried. */
  onRetry?: (err: unknown, attempt: number) => void;
  /** Called after an event was parked in the dead-letter stream. */
  onParked?: (seq: number, err: unknown) => void;
}

export interface Projector {
  /** Stops consuming, lets the batch in progress commit and be acked, leaves the rest unacked. */
  stop(): Promise<void>;
}

/**
 * Projects every event into the database in ordered batches.
 *
 * This uses the consumer directly rather than `consumeEvents` from @sluice/bus: that one runs
 * handlers concurrently and acks each message on its own, while the ledger needs the messages
 * in order, grouped, applied in one transaction with the position, and acked only after commit.
 * Messages are held by sequence (a redelivery replaces its earlier copy) and taken lowest first.
 * A failed commit is retried with backoff and nothing is acked meanwhile; the stream keeps everything.
 * A batch that keeps failing while a probe event still projects holds an event that cannot be projected:
 * the events are then applied one at a time, and the one that still fails is parked in the
 * dead-letter stream (with `event.parked` on its request's timeline) and passed, so one bad
 * event never stops the ledger. `npm run config -- replay ledger` sends it back after a fix.
 */
export async function startProjector(bus: Bus, opts: ProjectorOptions): Promise<Projector> {
  const batchSize = opts.batchSize ?? 1000;
  const lingerMs = opts.lingerMs ?? 5;
  const retryBaseMs = opts.retryBaseMs ?? 250;
  const retryMaxMs = opts.retryMaxMs ?? 30_000;
  const stream = natsStreamReader(bus.jsm);
  const parkRaw = async (m: RawEvent, error: unknown, deliveries: number, attempt?: string) => {
    await park(bus, {
      durable: DURABLE,
      service: Consumers.ledger.service,
      seq: m.seq,
      subject: m.subject ?? Subjects.allEvents,
      data: m.data,
      deliveries,
      error,
      event: parsed(m),
      attempt,
    });
    opts.log.error({ err: error, seq: m.seq }, 'parked an event the ledger cannot project');
    opts.onParked?.(m.seq, error);
  };
  const open = await countOpen(opts.db);
  const deps = {
    name: DURABLE,
    priceOf: opts.priceOf,
    ...(opts.budgetsOf ? { budgetsOf: opts.budgetsOf } : {}),
    open,
    stream,
    log: opts.log,
    park: (m: RawEvent, err: unknown) => parkRaw(m, err, 1),
  };
  const committed = (result: BatchResult) => {
    open.count += result.spend.opened - result.spend.settled;
    if (result.spend.changed.length || result.spend.alerts) opts.onSpend?.(result.spend, result.position);
    opts.onBatch?.(result);
  };

  await ensureLedgerConsumer(bus.jsm, await readPosition(opts.db, DURABLE), opts.log);
  const consumer = await bus.js.consumers.get(STREAM, DURABLE);
  const held = new Map<number, JsMsg>();
  let stopping = false;
  let wakeUp: (() => void) | undefined;
  let stopped!: () => void;
  const stopSignal = new Promise<void>((r) => (stopped = r));

  /** Resolves on the next wake-up call, on stop, or after `ms`. */
  const wake = (ms?: number) =>
    new Promise<void>((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(resolve, ms);
      wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    }).finally(() => (wakeUp = undefined));
  const sleep = (ms: number) => Promise.race([new Promise<void>((r) => setTimeout(r, ms).unref()), stopSignal]);

  const messages = await consumer.consume({
    max_messages: Math.min(MAX_ACK_PENDING / 2, batchSize * 2),
    // short pulls: after the consumer is recreated (rebuild), the next pull finds it within seconds
    expires: 5_000,
    callback: (m) => {
      held.set(m.seq, m);
      if (held.size === 1 || held.size >= batchSize) wakeUp?.();
    },
  });

  /** Backs off after a failed try; false when the projector stops meanwhile. */
  const backOff = async (err: unknown, attempt: number, firstSeq: number | undefined, size: number) => {
    const delayMs = Math.min(retryMaxMs, retryBaseMs * 2 ** Math.min(attempt, 16));
    opts.log.warn({ err, attempt, delayMs, firstSeq, size }, 'could not commit batch; retrying');
    opts.onRetry?.(err, attempt);
    await sleep(delayMs);
    return !stopping;
  };

  const commit = async (batch: JsMsg[]): Promise<boolean> => {
    const raw = batch.map((m) => ({ seq: m.seq, data: m.data, subject: m.subject }));
    for (let attempt = 0; ; attempt++) {
      try {
        committed(await applyBatch(opts.db, raw, deps));
        return true;
      } catch (err) {
        // a probe event projects and the batch still fails: something in it cannot be projected
        if (attempt + 1 >= TRIES_BEFORE_PARKING && (await projectionWorks(opts.db, opts.priceOf))) return isolate(raw);
        if (!(await backOff(err, attempt, raw[0]?.seq, raw.length))) return false;
      }
    }
  };

  /**
   * Applies a failing batch one event at a time, in sequence order from the stored position
   * (events the batch lacks are read from the stream), and parks each event that fails alone.
   */
  const isolate = async (raw: RawEvent[]): Promise<boolean> => {
    const bySeq = new Map(raw.map((m) => [m.seq, m]));
    const last = Math.max(...bySeq.keys());
    for (let seq = (await readPosition(opts.db, DURABLE)) + 1; seq <= last; seq++) {
      const m = bySeq.get(seq) ?? (await stream.read(seq));
      if (!m) continue;
      for (let attempt = 0; ; attempt++) {
        try {
          committed(await applyBatch(opts.db, [m], deps));
          break;
        } catch (err) {
          if (attempt + 1 >= TRIES_BEFORE_PARKING && (await projectionWorks(opts.db, opts.priceOf))) {
            await parkRaw(m, err, attempt + 1);
            await skipParked(opts.db, DURABLE, m.seq);
            break;
          }
          if (!(await backOff(err, attempt, m.seq, 1))) return false;
        }
      }
    }
    return true;
  };

  // dead letters sent back by an operator: projected without moving the position
  const replays = await consumeReplays(bus, { durable: DURABLE, log: opts.log }, async (msg, r) => {
    const m = { seq: r.seq, data: msg.data, subject: r.subject };
    try {
      const spend = await applyReplayed(opts.db, m, deps);
      open.count += spend.opened - spend.settled;
      if (spend.changed.length || spend.alerts) opts.onSpend?.(spend, await readPosition(opts.db, DURABLE));
      msg.ack();
    } catch (err) {
      if (msg.info.deliveryCount >= TRIES_BEFORE_PARKING && (await projectionWorks(opts.db, opts.priceOf))) {
        await parkRaw(m, err, r.deliveries + msg.info.deliveryCount, `replay-${msg.seq}`).then(
          () => msg.term(),
          () => msg.nak(1000),
        );
      } else msg.nak(1000);
    }
  });

  const loop = async () => {
    while (!stopping) {
      if (held.size === 0) {
        await wake();
        continue;
      }
      if (held.size < batchSize) await wake(lingerMs);
      if (stopping) return;
      const seqs = [...held.keys()].sort((a, b) => a - b).slice(0, batchSize);
      const batch = seqs.map((s) => held.get(s)!);
      for (const s of seqs) held.delete(s);
      const committed = tracingOn() ? await traceCommit(DURABLE, batch, () => commit(batch)) : await commit(batch);
      if (!committed) return;
      // ack-all: the batch's highest sequence acks it and every message before it (all committed)
      batch[batch.length - 1]!.ack();
    }
  };
  const done = loop().catch((err: unknown) => opts.log.error({ err }, 'ledger projector stopped unexpectedly'));

  return {
    async stop() {
      await messages.close();
      await replays.close();
      stopping = true;
      stopped();
      wakeUp?.();
      await done;
    },
  };
}

function parsed(m: RawEvent): AnyEvent | undefined {
  try {
    return parseEvent(m.data);
  } catch {
    return undefined;
  }
}
