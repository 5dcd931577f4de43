import { createHash } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import { encodeJson, getJson, isWrongRevision } from '@sluice/bus';
import type { Logger } from '@sluice/telemetry';
import { adjust, decide, layersOf, rateOf, type Bucket, type Buckets, type Decision, type Layer, type Limits, type Throttled } from './limiter.js';
import { Leases, planWrite, type LeaseOptions, type Remainder } from './leases.js';

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
  /** Paid layers a lease covered (a refund goes back to the lease, not to KV). */
  fromLease: Set<Layer>;
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
  /**
   * How long a change may wait for the next admission round to join (default 50 ms; 0 runs it
   * at once). Reconciliations touch the same tenant and user keys admissions write, so one
   * write carries both instead of a round trip of its own per completed request.
   */
  adjustLingerMs?: number;
  /**
   * Leased blocks (leases.ts): admissions a lease covers need no KV round trip. Off when unset;
   * the limiter service turns it on.
   */
  lease?: LeaseOptions;
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
 * touches) a round is one round trip to KV instead of two. Changes (reconciliations, refunds)
 * wait up to `adjustLingerMs` to ride in the next admission's round. With `lease` set, each
 * admission's write also takes a block of capacity for this replica (leases.ts), and the
 * admissions that block covers are decided in memory with no round trip at all.
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
  private lingering: NodeJS.Timeout | undefined;
  private readonly leases: Leases | undefined;
  private expiry: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  private readonly maxRounds: number;
  private readonly maxBatch: number;
  private readonly maxKnown: number;
  private readonly adjustLingerMs: number;

  constructor(
    private readonly kv: KV,
    private readonly opts: LimitStoreOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.maxRounds = opts.maxRounds ?? 20;
    this.maxBatch = opts.maxBatch ?? 512;
    this.maxKnown = opts.maxKnownKeys ?? 10_000;
    this.adjustLingerMs = opts.adjustLingerMs ?? 50;
    this.leases = opts.lease && opts.lease.fraction > 0 ? new Leases(opts.lease) : undefined;
  }

  /** Decides a request and, when admitted, debits every layer. */
  admit(keys: LimitKeys, limits: Limits, estimatedTokens: number): Promise<Decision> {
    const layers = layersOf(limits);
    const covered = this.leases?.cover(keys, layers, estimatedTokens) ?? [];
    if (covered.length === layers.length) return Promise.resolve({ admitted: true, buckets: this.leaseView(keys, layers) });
    return this.enqueue(keys, limits, layers, { kind: 'admit', estimatedTokens }, covered);
  }

  /** Gives every lease back to its bucket (on shutdown, so other replicas get the capacity). */
  async close(): Promise<void> {
    clearTimeout(this.expiry);
    this.expiry = undefined;
    await this.returnLeases(true);
  }

  /** Applies a change to the given layers without any check (negative tokens debit). */
  adjust(keys: LimitKeys, limits: Limits, layers: Layer[], change: Change): Promise<void> {
    return this.enqueue(keys, limits, layers, { kind: 'adjust', change }).then(() => undefined);
  }

  private enqueue(keys: LimitKeys, limits: Limits, layers: Layer[], op: Job['op'], fromLease: Layer[] = []): Promise<Decision> {
    return new Promise((resolve, reject) => {
      this.queue.push({ keys, limits, layers, op, paid: new Set(fromLease), fromLease: new Set(fromLease), written: {}, rounds: 0, resolve, reject });
      if (!this.running) void this.run();
    });
  }

  /**
   * Only changes are queued: they wait (once, for at most the linger) for an admission to ride
   * with. An admission arriving meanwhile runs them at once.
   */
  private waitForAdmission(lingered: boolean): boolean {
    if (lingered || this.adjustLingerMs <= 0 || this.queue.some((j) => j.op.kind === 'admit')) return false;
    this.lingering ??= setTimeout(() => {
      this.lingering = undefined;
      void this.run(true);
    }, this.adjustLingerMs);
    return true;
  }

  private async run(lingered = false): Promise<void> {
    if (this.running || this.waitForAdmission(lingered)) return;
    clearTimeout(this.lingering);
    this.lingering = undefined;
    this.running = true;
    try {
      while (this.queue.length) {
        if (this.waitForAdmission(lingered)) break;
        lingered = false;
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
    // a lease's remainder counts as part of its bucket while deciding (leases.ts)
    const folded = new Map<string, Remainder>();
    const working = new Map<string, Bucket | undefined>(
      [...reads].map(([k, r]) => {
        const rest = this.leases?.remainder(k);
        if (!r || !rest || (rest.requests === 0 && rest.tokens === 0)) return [k, r?.value];
        folded.set(k, rest);
        return [k, { ...r.value, requests: r.value.requests + rest.requests, tokens: r.value.tokens + rest.tokens }];
      }),
    );
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
        const shown = working.get(key)!;
        const lease = this.takeBlock(key, shown, users, folded.get(key));
        const value = lease?.value ?? shown;
        const read = reads.get(key);
        try {
          const revision = read ? await this.kv.update(key, encodeJson(value), read.revision) : await this.kv.create(key, encodeJson(value));
          this.remember(key, value, revision);
          if (lease) {
            this.leases!.replace(key, lease.layer, lease.rate, lease.folded, lease.block, now);
            this.armExpiry();
          }
        } catch (e) {
          // someone else wrote it (or we cannot tell): read it afresh next time
          this.known.delete(key);
          if (!isWrongRevision(e)) failure ??= e;
          return;
        }
        for (const [job, layer] of users) {
          job.paid.add(layer);
          job.written[layer] = shown;
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

  /** The lease side of a round's write of `key` (leases.ts): remainder folded in, block out for admissions. */
  private takeBlock(key: string, bucket: Bucket, users: Array<[Job, Layer]>, folded?: Remainder) {
    if (!this.leases) return undefined;
    const needs = users.flatMap(([job]) => (job.op.kind === 'admit' ? [job.op.estimatedTokens] : []));
    const [job, layer] = users[0]!;
    return planWrite(bucket, layer, rateOf(job.limits, layer), needs, folded, this.leases.opts.fraction);
  }

  /** The buckets an admission decided by leases reports: what this store last wrote plus its lease. */
  private leaseView(keys: LimitKeys, layers: Layer[]): Buckets {
    const view: Buckets = {};
    for (const layer of layers) {
      const known = this.known.get(keys[layer]!)?.value;
      const lease = this.leases?.get(keys[layer]!);
      if (known && lease) view[layer] = { ...known, requests: known.requests + lease.requests, tokens: known.tokens + lease.tokens };
    }
    return view;
  }

  /** One timer while any lease exists: remainders not topped up within the ttl go back to KV. */
  private armExpiry(): void {
    if (this.expiry || !this.leases?.size) return;
    this.expiry = setTimeout(() => {
      this.expiry = undefined;
      void this.returnLeases(false).finally(() => this.armExpiry());
    }, this.leases.opts.ttlMs);
    this.expiry.unref();
  }

  private async returnLeases(all: boolean): Promise<void> {
    if (!this.leases) return;
    const back = this.leases.takeExpired(this.now(), all).filter(([, l]) => l.requests !== 0 || l.tokens !== 0);
    await Promise.all(
      back.map(([key, lease]) =>
        // keys and limits for the one layer the lease belongs to
        this.adjust({ tenant: key, global: key, user: key }, { tenant: lease.rate, global: lease.rate, user: lease.rate }, [lease.layer], {
          requests: lease.requests,
          tokens: lease.tokens,
        }).catch((err: unknown) => this.opts.log?.warn({ err, key }, 'could not return a lease; the bucket refills by itself')),
      ),
    );
  }

  /** Gives back what a partly written admission already took (to its lease when a lease paid). */
  private refund(job: Job): void {
    if (job.op.kind !== 'admit' || job.paid.size === 0) return;
    const need = job.op.estimatedTokens;
    for (const layer of job.fromLease) if (job.paid.has(layer)) this.leases?.credit(job.keys[layer]!, 1, need);
    const paid = [...job.paid].filter((l) => !job.fromLease.has(l));
    job.paid.clear();
    if (paid.length === 0) return;
    this.adjust(job.keys, job.limits, paid, { requests: 1, tokens: job.op.estimatedTokens }).catch((err: unknown) =>
      this.opts.log?.warn({ err, keys: job.keys }, 'refund of a partly written admission failed; the layer stays over-debited until it refills'),
    );
  }
}
