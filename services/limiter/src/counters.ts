import type { KV } from '@nats-io/kv';
import { BudgetKeys, type BudgetRef } from '@sluice/contracts';
import { encodeJson, isWrongRevision, TransientFault, updateOnce } from '@sluice/bus';
import type { Logger } from '@sluice/telemetry';
import { hasRoom, type CounterState } from './budget-check.js';
import { KvMirror, type Seen } from './mirror.js';

export interface BudgetCountersOptions {
  /** Compare-and-set attempts per batch before its reservations fail (default 50). */
  maxRounds?: number;
  /** Keys kept current in memory (default 10,000). */
  maxKnownKeys?: number;
  log?: Logger;
}

/** One change to an `admitted` counter: a reservation (checked against its budget's limit) or a release. */
interface Pending {
  nanos: number;
  /** The budget's limit the change is checked against; unset: none (a release). */
  limitNanos?: number;
  /** Applied only if it fits (a `refuse` budget); otherwise applied either way, and whether it fitted is reported. */
  mustFit: boolean;
  spendKey: string;
  resolve: (fit: boolean) => void;
  reject: (e: unknown) => void;
}

/** What reserving a request's estimate on its budgets came to. */
export type Reserved = { reserved: true; overDowngrade: BudgetRef[] } | { reserved: false; spent: BudgetRef; state: CounterState };

/**
 * The budget counters in `sluice_budgets`: the ledger's spend (`spend.<budgetKey>.<windowId>`,
 * read only) and the `admitted.<budgetKey>.<windowId>` counters limiter replicas add each admitted
 * request's estimated cost to with compare-and-set. Both are read through a KvMirror (a get the
 * first time, then kept current by a watch), so a check costs no round trip once a counter is
 * known and a reservation costs one write per counter.
 *
 * Reservations on one counter are batched: while a write is in flight, new ones queue, and the
 * next write carries all of them (each checked in arrival order against the running total), so a
 * replica never races itself. A lost race with another replica waits a short jittered backoff
 * (up to 2, 4, 8, 16 ms), reads the counter afresh from the stream's leader and checks the whole
 * batch again: a reservation is made only if it still fits after every other
 * replica's, which is what keeps the overshoot to the requests in flight.
 */
export class BudgetCounters {
  private readonly mirror: KvMirror;
  private readonly queues = new Map<string, Pending[]>();
  private readonly maxRounds: number;
  /** Compare-and-set writes tried and won, the most rounds a won write took, and batches that gave up. */
  readonly stats = { tried: 0, won: 0, mostRounds: 0, gaveUp: 0 };

  constructor(
    private readonly kv: KV,
    private readonly opts: BudgetCountersOptions = {},
  ) {
    this.mirror = new KvMirror(kv, opts.maxKnownKeys ?? 10_000, opts.log);
    this.maxRounds = opts.maxRounds ?? 50;
  }

  async start(): Promise<void> {
    await this.mirror.start();
  }

  stop(): void {
    this.mirror.stop();
  }

  /** A budget's counter as last known (a KV read only the first time a counter is asked for). */
  async state(ref: BudgetRef): Promise<CounterState> {
    const [spend, admitted] = await Promise.all([this.mirror.get(spendKey(ref)), this.mirror.get(admittedKey(ref))]);
    return stateOf(spend, admitted);
  }

  /**
   * Adds `nanos` to every budget's admitted counter. A `refuse` budget takes it only if it still
   * fits; if one does not, what the others took is released and the request is refused. A
   * `downgrade` budget always takes it (the request goes on, downgraded); those it did not fit
   * are listed in `overDowngrade`.
   */
  async reserve(refs: readonly BudgetRef[], nanos: number): Promise<Reserved> {
    const took = await Promise.allSettled(refs.map((ref) => this.enqueue(admittedKey(ref), spendKey(ref), nanos, ref.limitNanos, ref.action === 'refuse')));
    const fitted = took.map((t) => t.status === 'fulfilled' && t.value);
    const failed = took.find((t): t is PromiseRejectedResult => t.status === 'rejected');
    const spentAt = refs.findIndex((ref, i) => ref.action === 'refuse' && !fitted[i]);
    if (!failed && spentAt < 0) return { reserved: true, overDowngrade: refs.filter((_, i) => !fitted[i]) };
    // a refuse budget that did not fit took nothing, a downgrade budget took it either way
    await this.release(
      refs.filter((ref, i) => took[i]!.status === 'fulfilled' && (fitted[i] || ref.action === 'downgrade')),
      nanos,
    );
    if (failed) throw failed.reason;
    const spent = refs[spentAt]!;
    return { reserved: false, spent, state: await this.state(spent) };
  }

  /** Takes `nanos` off each budget's admitted counter again (a reservation that did not go through). */
  async release(refs: readonly BudgetRef[], nanos: number): Promise<void> {
    await Promise.all(
      refs.map((ref) =>
        this.enqueue(admittedKey(ref), spendKey(ref), -nanos, undefined, false).catch((err: unknown) =>
          this.opts.log?.warn({ err, budget: ref.budget }, 'could not release a reservation; the budget counts it in flight until the window ends'),
        ),
      ),
    );
  }

  private enqueue(key: string, spendKey: string, nanos: number, limitNanos: number | undefined, mustFit: boolean): Promise<boolean> {
    return new Promise((resolve, reject) => {
      let queue = this.queues.get(key);
      const start = !queue;
      if (!queue) this.queues.set(key, (queue = []));
      queue.push({ nanos, limitNanos, mustFit, spendKey, resolve, reject });
      if (start) void this.drain(key);
    });
  }

  /**
   * Writes the key's queued changes, a batch per write, until none are left. Between two writes
   * of a busy key it leaves a gap of about one write's time (jittered, at most 50 ms): a replica
   * that wrote again the moment its ack came back left another replica, which needs a read and
   * then a write, no revision it could win, and on one hot key behind a cluster a replica farther
   * from the stream's leader lost every round until its batch gave up (counters-cluster.int.spec.ts).
   */
  private async drain(key: string): Promise<void> {
    const queue = this.queues.get(key)!;
    while (queue.length) {
      const batch = queue.splice(0);
      const started = performance.now();
      try {
        const fitted = await this.writeBatch(key, batch);
        batch.forEach((p, i) => p.resolve(fitted[i]!));
      } catch (e) {
        for (const p of batch) p.reject(e);
      }
      if (queue.length) await pause(Math.min(50, (0.5 + Math.random()) * (performance.now() - started)));
    }
    this.queues.delete(key);
  }

  /** One compare-and-set of the batch's sum of fitting changes; read afresh and again on a lost race. */
  private async writeBatch(key: string, batch: Pending[]): Promise<boolean[]> {
    for (let round = 0; round < this.maxRounds; round++) {
      // a lost race: another replica's write goes in, then the key is read from the stream leader
      if (round > 0) await backoff(round);
      const admitted = round === 0 ? await this.mirror.get(key) : await this.mirror.refresh(key);
      const spends = await Promise.all(batch.map((p) => this.mirror.get(p.spendKey)));
      let total = numberOf(admitted.value);
      const fitted = batch.map((p, i) => {
        const ok = p.limitNanos === undefined || hasRoom({ ...stateOf(spends[i]!, undefined), admittedNanos: total }, p.limitNanos);
        if (ok || !p.mustFit) total += p.nanos;
        return ok;
      });
      if (total === numberOf(admitted.value)) return fitted;
      try {
        const body = encodeJson(total);
        this.stats.tried++;
        // updateOnce: a plain update can win alongside another replica's on a clustered 2.9.10 (@sluice/bus kv-once.ts)
        const revision = admitted.revision > 0 ? await updateOnce(this.kv, key, body, admitted.revision) : await this.kv.create(key, body);
        this.mirror.observe(key, { value: total, revision });
        this.stats.won++;
        this.stats.mostRounds = Math.max(this.stats.mostRounds, round + 1);
        return fitted;
      } catch (e) {
        if (!isWrongRevision(e)) throw e;
      }
    }
    this.stats.gaveUp++;
    // contention passes: the admission is redelivered with backoff, never parked (a parked
    // chat.requested is a request nobody answers)
    throw new TransientFault(`budget counter ${key}: compare-and-set lost ${this.maxRounds} times in a row`);
  }
}

const spendKey = (ref: BudgetRef) => BudgetKeys.spend(ref.budgetKey, ref.windowId);
const admittedKey = (ref: BudgetRef) => BudgetKeys.admitted(ref.budgetKey, ref.windowId);

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A jittered pause before another round: up to 2, 4, 8, then 16 ms after the first, second, third and later lost race. */
function backoff(round: number): Promise<void> {
  return pause(Math.random() * 2 ** Math.min(round, 4));
}

function numberOf(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

function stateOf(spend: Seen, admitted: Seen | undefined): CounterState {
  const s = spend.value as { spentNanos?: unknown; settledNanos?: unknown } | undefined;
  return { spentNanos: numberOf(s?.spentNanos), settledNanos: numberOf(s?.settledNanos), admittedNanos: numberOf(admitted?.value) };
}
