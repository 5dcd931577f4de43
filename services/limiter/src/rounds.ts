import type { KV } from '@nats-io/kv';
import { encodeJson, getJson, isWrongRevision, updateOnce } from '@sluice/bus';
import type { Logger } from '@sluice/telemetry';
import type { Bucket, Decision } from './limiter.js';
import type { Leases } from './leases.js';
import { newJob, unpaid, type Job, type Stored } from './job.js';
import { planRound, readsFor, type KeyWrite } from './plan.js';
import { refundOf, settleRound, type Refund, type Verdict } from './settle.js';
import type { RevisionCache } from './revisions.js';

export interface RoundsOptions {
  now: () => number;
  /** Rounds a job may take before it fails with contention. */
  maxRounds: number;
  maxBatch: number;
  /** How long changes alone wait for an admission's round to ride in (0: they run at once). */
  adjustLingerMs: number;
  leases?: Leases;
  /** After a won write topped up a lease (the store arms the lease expiry). */
  onLeased: () => void;
  log?: Logger;
}

interface Queued {
  job: Job;
  resolve: (d: Decision) => void;
  reject: (e: unknown) => void;
}

/**
 * The KV executor: runs queued jobs in rounds. A round takes every queued job, reads the keys
 * the revision cache does not hold (in parallel), has plan.ts decide them, writes each planned
 * key with compare-and-set (create for a new key), and acts on settle.ts's verdicts. Jobs that
 * lost a race go first into the next round, so a retried job does not starve behind newer
 * arrivals. One round runs at a time: that is what keeps a replica from racing itself on `g`.
 */
export class KvRounds {
  private queue: Queued[] = [];
  private running = false;
  private lingering: NodeJS.Timeout | undefined;

  constructor(
    private readonly kv: KV,
    private readonly revisions: RevisionCache,
    private readonly opts: RoundsOptions,
  ) {}

  /** Queues a job; settles with its decision (a change resolves as an admission). */
  submit(job: Job): Promise<Decision> {
    return new Promise((resolve, reject) => {
      this.queue.push({ job, resolve, reject });
      if (!this.running) void this.run();
    });
  }

  /**
   * Only changes are queued: they wait (once, for at most the linger) for an admission to ride
   * with. An admission arriving meanwhile runs them at once.
   */
  private waitForAdmission(lingered: boolean): boolean {
    if (lingered || this.opts.adjustLingerMs <= 0 || this.queue.some((q) => q.job.op.kind === 'admit')) return false;
    this.lingering ??= setTimeout(() => {
      this.lingering = undefined;
      void this.run(true);
    }, this.opts.adjustLingerMs);
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
        const batch = this.queue.splice(0, this.opts.maxBatch);
        let pending: Queued[];
        try {
          pending = await this.round(batch);
        } catch (error) {
          for (const q of batch) this.settle(q, { kind: 'failed', error, refund: refundOf(q.job) });
          continue;
        }
        this.queue.unshift(...pending);
      }
    } finally {
      this.running = false;
    }
  }

  /** One read-plan-write round; returns the jobs that lost a race and need another. */
  private async round(batch: Queued[]): Promise<Queued[]> {
    // admissions queued while this replica's last block was being written: what the leases hold
    // now is spent first, and only what they do not cover is decided in KV (a round never counts
    // a lease's remainder in a bucket, see leases.ts)
    for (const q of batch) q.job = this.coverFromLeases(q.job);
    const jobs = batch.map((q) => q.job);
    const { cached, toRead } = readsFor(jobs, this.revisions);
    const stored = new Map<string, Stored | undefined>(cached);
    const read = await Promise.all(toRead.map((key) => getJson<Bucket>(this.kv, key)));
    toRead.forEach((key, i) => stored.set(key, read[i]));

    const now = this.opts.now();
    const leases = this.opts.leases;
    const plan = planRound(jobs, stored, now, leases && { fraction: leases.opts.fraction });

    let failure: { error: unknown } | undefined;
    const won = await Promise.all(
      plan.writes.map(async (write) => {
        try {
          await this.write(write, now);
          return true;
        } catch (error) {
          // someone else wrote it (or we cannot tell): read it afresh next time
          this.revisions.forget(write.key);
          if (!isWrongRevision(error)) failure ??= { error };
          return false;
        }
      }),
    );

    const verdicts = settleRound(jobs, plan, won, failure, this.opts.maxRounds);
    return batch.flatMap((q, i) => this.settle(q, verdicts[i]!) ?? []);
  }

  /** The job with the unpaid layers its leases cover now paid from them (and shown as the lease view). */
  private coverFromLeases(job: Job): Job {
    const leases = this.opts.leases;
    if (!leases || job.op.kind !== 'admit') return job;
    const targets = unpaid(job);
    const keys = Object.fromEntries(targets.map((t) => [t.layer, t.key]));
    const covered = leases.cover(
      keys,
      targets.map((t) => t.layer),
      job.op.estimatedTokens,
      this.opts.now(),
    );
    if (covered.length === 0) return job;
    const written = { ...job.written };
    for (const layer of covered) {
      const known = this.revisions.value(keys[layer]!);
      const lease = leases.get(keys[layer]!);
      if (known && lease) written[layer] = { ...known, requests: known.requests + lease.requests, tokens: known.tokens + lease.tokens };
    }
    return { ...job, paid: new Set([...job.paid, ...covered]), fromLease: new Set([...job.fromLease, ...covered]), written };
  }

  private async write(write: KeyWrite, now: number): Promise<void> {
    const { key, value, revision, lease } = write;
    // updateOnce: a plain update can win alongside another replica's on a clustered 2.9.10 (@sluice/bus kv-once.ts)
    const written = revision !== undefined ? await updateOnce(this.kv, key, encodeJson(value), revision) : await this.kv.create(key, encodeJson(value));
    this.revisions.remember(key, value, written);
    if (lease && this.opts.leases) {
      this.opts.leases.topUp(key, lease.layer, lease.rate, lease.block, now);
      this.opts.onLeased();
    }
  }

  /** Acts on a verdict; returns the job to queue again when it lost a race. */
  private settle(q: Queued, verdict: Verdict): Queued | undefined {
    switch (verdict.kind) {
      case 'written':
        q.resolve({ admitted: true, buckets: verdict.buckets });
        return undefined;
      case 'throttled':
        this.refund(verdict.refund);
        q.resolve(verdict.decision);
        return undefined;
      case 'failed':
        this.refund(verdict.refund);
        q.reject(verdict.error);
        return undefined;
      case 'retry':
        return { ...q, job: verdict.job };
      default: {
        const _exhaustive: never = verdict;
        throw new Error(`unknown verdict ${String(_exhaustive)}`);
      }
    }
  }

  /** Gives back what a partly written admission already took: to its leases, and a change to KV. */
  private refund(refund: Refund | undefined): void {
    if (!refund) return;
    const { requests, tokens } = refund.change;
    for (const key of refund.leaseKeys) this.opts.leases?.credit(key, requests, tokens);
    if (refund.targets.length === 0) return;
    this.submit(newJob(refund.targets, { kind: 'adjust', change: refund.change })).catch((err: unknown) =>
      this.opts.log?.warn(
        { err, keys: refund.targets.map((t) => t.key) },
        'refund of a partly written admission failed; the layer stays over-debited until it refills',
      ),
    );
  }
}
