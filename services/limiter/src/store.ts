import type { KV } from '@nats-io/kv';
import type { Rate } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import { layersOf, type Buckets, type Decision, type Layer, type Limits } from './limiter.js';
import { giveBack, Leases, type LeaseOptions } from './leases.js';
import { newJob, targetsOf, type Change } from './job.js';
import { RevisionCache } from './revisions.js';
import { KvRounds } from './rounds.js';
import type { LimitKeys } from './keys.js';

export { limitKeys, type LimitKeys } from './keys.js';

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
 * replicas are retried. The rounds are rounds.ts (KV) around plan.ts and settle.ts (pure).
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
  private readonly revisions: RevisionCache;
  private readonly leases: Leases | undefined;
  private readonly rounds: KvRounds;
  private expiry: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(
    kv: KV,
    private readonly opts: LimitStoreOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.revisions = new RevisionCache(opts.maxKnownKeys ?? 10_000);
    this.leases = opts.lease && opts.lease.fraction > 0 ? new Leases(opts.lease) : undefined;
    this.rounds = new KvRounds(kv, this.revisions, {
      now: this.now,
      maxRounds: opts.maxRounds ?? 20,
      maxBatch: opts.maxBatch ?? 512,
      adjustLingerMs: opts.adjustLingerMs ?? 50,
      leases: this.leases,
      onLeased: () => this.armExpiry(),
      log: opts.log,
    });
  }

  /** Decides a request and, when admitted, debits every layer. */
  async admit(keys: LimitKeys, limits: Limits, estimatedTokens: number): Promise<Decision> {
    const layers = layersOf(limits);
    const targets = targetsOf(keys, limits, layers);
    const covered = this.leases?.cover(keys, layers, estimatedTokens, this.now()) ?? [];
    if (covered.length === layers.length) return { admitted: true, buckets: this.leaseView(keys, layers) };
    return this.rounds.submit(newJob(targets, { kind: 'admit', limits, estimatedTokens }, covered));
  }

  /** How many buckets this store holds a lease of (given back ones not counted). */
  get leasesHeld(): number {
    return this.leases?.size ?? 0;
  }

  /** Gives every lease back to its bucket (on shutdown, so other replicas get the capacity). */
  async close(): Promise<void> {
    clearTimeout(this.expiry);
    this.expiry = undefined;
    await this.returnLeases(true);
  }

  /** Applies a change to the given layers without any check (negative tokens debit). */
  async adjust(keys: LimitKeys, limits: Limits, layers: Layer[], change: Change): Promise<void> {
    await this.rounds.submit(newJob(targetsOf(keys, limits, layers), { kind: 'adjust', change }));
  }

  /** Applies a change to one bucket: a lease given back to the key it came from. */
  private async adjustKey(key: string, layer: Layer, rate: Rate, change: Change): Promise<void> {
    await this.rounds.submit(newJob([{ key, layer, rate }], { kind: 'adjust', change }));
  }

  /** The buckets an admission decided by leases reports: what this store last wrote plus its lease. */
  private leaseView(keys: LimitKeys, layers: Layer[]): Buckets {
    const view: Buckets = {};
    for (const layer of layers) {
      const known = this.revisions.value(keys[layer]!);
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
    const now = this.now();
    const ttlMs = this.leases.opts.ttlMs;
    const back = this.leases
      .takeExpired(now, all)
      .map(([key, lease]) => [key, lease, giveBack(lease, now, ttlMs)] as const)
      .filter(([, , change]) => change.requests !== 0 || change.tokens !== 0);
    await Promise.all(
      back.map(([key, lease, change]) =>
        this.adjustKey(key, lease.layer, lease.rate, change).catch((err: unknown) =>
          this.opts.log?.warn({ err, key }, 'could not return a lease; the bucket refills by itself'),
        ),
      ),
    );
  }
}
