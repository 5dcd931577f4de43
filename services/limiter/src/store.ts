import { createHash } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import { encodeJson, getJson, isWrongRevision } from '@sluice/bus';
import type { Logger } from '@sluice/telemetry';
import { adjust, decide, layersOf, rateOf, type Bucket, type Buckets, type Decision, type Layer, type Limits, type Throttled } from './limiter.js';

/** KV keys of a request's buckets in `sluice_limits`. */
export type LimitKeys = { user?: string; tenant: string; global: string };

/**
 * `g`, `t.<tenant>`, `u.<tenant>.<sha1(user), 16 hex>`: user ids are arbitrary strings and
 * KV keys are not; 64 bits of hash make a collision between two users of one tenant negligible.
 */
export function limitKeys(tenant: string, user?: string): LimitKeys {
  const keys: LimitKeys = { tenant: `t.${tenant}`, global: 'g' };
  if (user !== undefined) keys.user = `u.${tenant}.${createHash('sha1').update(user, 'utf8').digest('hex').slice(0, 16)}`;
  return keys;
}

type Change = { requests?: number; tokens?: number };

interface Job {
  keys: LimitKeys;
  limits: Limits;
  layers: Layer[];
  /** An admission to decide, or a change applied unconditionally (refund, reconciliation). */
  op: { kind: 'admit'; estimatedTokens: number } | { kind: 'adjust'; change: Change };
  paid: Set<Layer>;
  written: Buckets;
  rounds: number;
  outcome?: Throttled;
  resolve: (d: Decision) => void;
  reject: (e: unknown) => void;
}

export interface LimitStoreOptions {
  now?: () => number;
  /** Rounds (read, decide, compare-and-set) a job may take before it fails with contention. */
  maxRounds?: number;
  maxBatch?: number;
  /** Keys whose value and revision are kept to skip the read (default 10,000). */
  maxKnownKeys?: number;
  log?: Logger;
}

/**
 * Token-bucket state in KV, safe with several replicas. Requests are decided in rounds: a
 * round takes every queued job, reads the keys they touch (in parallel), decides them in
 * arrival order against that state, and writes each changed key once with compare-and-set.
 * Batching keeps one replica from racing itself on the hot `g` key; races with other
 * replicas are retried.
 *
 * A key this store last read or wrote is not read again: its value and revision are kept, and
 * the compare-and-set against that revision is the check that nobody wrote it since. A lost
 * race forgets the key, so the next round reads it. With one replica (or keys only one replica
 * touches) a round is one round trip to KV instead of two.
 *
 * A job's layers that were written stay paid; a lost race re-decides only the others. If the
 * re-decision throttles, the paid layers are refunded (the request never counted). Known
 * costs: between a partial write and its refund another request may be throttled by the
 * not-yet-refunded amount; a job throttled because an earlier job in the same round debited
 * a key whose write then lost stays throttled (errs towards throttling, never over-admits).
 */
export class LimitStore {
  private queue: Job[] = [];
  /** Value and revision of keys as this store last read or wrote them. */
  private readonly known = new Map<string, { value: Bucket; revision: number }>();
  private running = false;
  private readonly now: () => number;
  private readonly maxRounds: number;
  private readonly maxBatch: number;
  private readonly maxKnown: number;

  constructor(
    private readonly kv: KV,
    private readonly opts: LimitStoreOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.maxRounds = opts.maxRounds ?? 20;
    this.maxBatch = opts.maxBatch ?? 512;
    this.maxKnown = opts.maxKnownKeys ?? 10_000;
  }

  /** Decides a request and, when admitted, debits every layer. */
  admit(keys: LimitKeys, limits: Limits, estimatedTokens: number): Promise<Decision> {
    return this.enqueue(keys, limits, layersOf(limits), { kind: 'admit', estimatedTokens });
  }

  /** Applies a change to the given layers without any check (negative tokens debit). */
  adjust(keys: LimitKeys, limits: Limits, layers: Layer[], change: Change): Promise<void> {
    return this.enqueue(keys, limits, layers, { kind: 'adjust', change }).then(() => undefined);
  }

  private enqueue(keys: LimitKeys, limits: Limits, layers: Layer[], op: Job['op']): Promise<Decision> {
    return new Promise((resolve, reject) => {
      this.queue.push({ keys, limits, layers, op, paid: new Set(), written: {}, rounds: 0, resolve, reject });
      if (!this.running) void this.run();
    });
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length) {
        const jobs = this.queue.splice(0, this.maxBatch);
        let pending: Job[];
        try {
          pending = await this.round(jobs);
        } catch (e) {
          for (const job of jobs) this.fail(job, e);
          continue;
        }
        // lost races go first, so a retried job does not starve behind newer arrivals
        this.queue.unshift(...pending);
      }
    } finally {
      this.running = false;
    }
  }

  /** One read-decide-write round; returns the jobs that lost a race and need another. */
  private async round(jobs: Job[]): Promise<Job[]> {
    const keyOf = (job: Job, layer: Layer) => {
      const key = job.keys[layer];
      if (key === undefined) throw new Error(`limits: no key for the ${layer} layer`);
      return key;
    };
    const unpaid = (job: Job) => job.layers.filter((l) => !job.paid.has(l));
    const wanted = new Set(jobs.flatMap((job) => unpaid(job).map((l) => keyOf(job, l))));
    const reads = new Map(
      await Promise.all(
        [...wanted].map(async (k) => {
          const known = this.known.get(k);
          return [k, known ?? (await getJson<Bucket>(this.kv, k))] as const;
        }),
      ),
    );

    const now = this.now();
    const working = new Map<string, Bucket | undefined>([...reads].map(([k, r]) => [k, r?.value]));
    const touched = new Map<string, Array<[Job, Layer]>>();
    const touch = (job: Job, layer: Layer, bucket: Bucket) => {
      const key = keyOf(job, layer);
      working.set(key, bucket);
      touched.set(key, [...(touched.get(key) ?? []), [job, layer]]);
    };
    for (const job of jobs) {
      job.rounds++;
      const layers = unpaid(job);
      if (job.op.kind === 'admit') {
        const current: Buckets = {};
        for (const l of layers) {
          const b = working.get(keyOf(job, l));
          if (b) current[l] = b;
        }
        const d = decide(current, { estimatedTokens: job.op.estimatedTokens, paid: [...job.paid] }, job.limits, now);
        if (!d.admitted) job.outcome = d;
        else for (const l of layers) touch(job, l, d.buckets[l]!);
      } else {
        for (const l of layers) touch(job, l, adjust(working.get(keyOf(job, l)), rateOf(job.limits, l), job.op.change, now));
      }
    }

    let failure: unknown;
    await Promise.all(
      [...touched].map(async ([key, users]) => {
        const value = working.get(key)!;
        const read = reads.get(key);
        try {
          const revision = read ? await this.kv.update(key, encodeJson(value), read.revision) : await this.kv.create(key, encodeJson(value));
          this.remember(key, value, revision);
        } catch (e) {
          // someone else wrote it (or we cannot tell): read it afresh next time
          this.known.delete(key);
          if (!isWrongRevision(e)) failure ??= e;
          return;
        }
        for (const [job, layer] of users) {
          job.paid.add(layer);
          job.written[layer] = value;
        }
      }),
    );

    const pending: Job[] = [];
    for (const job of jobs) {
      if (job.outcome) {
        this.refund(job);
        job.resolve(job.outcome);
      } else if (unpaid(job).length === 0) {
        job.resolve({ admitted: true, buckets: job.written });
      } else if (failure !== undefined) {
        this.fail(job, failure);
      } else if (job.rounds >= this.maxRounds) {
        this.fail(job, new Error(`limits: too much contention after ${job.rounds} rounds`));
      } else {
        pending.push(job);
      }
    }
    return pending;
  }

  /** Keeps a key's latest value, dropping the least recently written beyond the bound (one per user). */
  private remember(key: string, value: Bucket, revision: number): void {
    this.known.delete(key);
    this.known.set(key, { value, revision });
    if (this.known.size > this.maxKnown) this.known.delete(this.known.keys().next().value!);
  }

  private fail(job: Job, e: unknown): void {
    this.refund(job);
    job.reject(e);
  }

  /** Gives back what a partly written admission already took. */
  private refund(job: Job): void {
    if (job.op.kind !== 'admit' || job.paid.size === 0) return;
    const paid = [...job.paid];
    job.paid.clear();
    this.adjust(job.keys, job.limits, paid, { requests: 1, tokens: job.op.estimatedTokens }).catch((err: unknown) =>
      this.opts.log?.warn({ err, keys: job.keys }, 'refund of a partly written admission failed; the layer stays over-debited until it refills'),
    );
  }
}
