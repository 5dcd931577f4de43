import { TransientFault } from '@sluice/bus';
import type { Buckets, Throttled } from './limiter.js';
import { unpaid, type Job, type Target } from './job.js';
import type { RoundPlan } from './plan.js';

/** What an admission that paid some layers gives back when it does not go through. */
export interface Refund {
  /** Keys of the leases that paid a layer: the change goes back to each lease. */
  leaseKeys: string[];
  /** Layers paid in KV: the change goes back to their buckets. */
  targets: Target[];
  change: { requests: number; tokens: number };
}

/** How a round ends for one job. */
export type Verdict =
  /** Every layer written: an admission's debited buckets, or a change applied. */
  | { kind: 'written'; buckets: Buckets }
  | { kind: 'throttled'; decision: Throttled; refund?: Refund }
  | { kind: 'failed'; error: unknown; refund?: Refund }
  /** Some write lost a race: the job, with what it paid, goes into the next round. */
  | { kind: 'retry'; job: Job };

/**
 * The verdict for each of a round's jobs, given which planned writes won (`won[i]` for
 * `plan.writes[i]`) and the first write error that was not a lost race. A won write pays
 * its layers for good; a job with layers left is retried, on those only, up to `maxRounds`.
 * A throttled or failed admission refunds what it paid (the request never counted). Pure.
 */
export function settleRound(
  jobs: readonly Job[],
  plan: RoundPlan,
  won: readonly boolean[],
  failure: { error: unknown } | undefined,
  maxRounds: number,
): Verdict[] {
  const next = jobs.map((job) => ({ ...job, paid: new Set(job.paid), written: { ...job.written }, rounds: job.rounds + 1 }));
  plan.writes.forEach((write, w) => {
    if (!won[w]) return;
    for (const [i, layer] of write.pays) {
      next[i]!.paid.add(layer);
      next[i]!.written[layer] = write.shown;
    }
  });
  return next.map((job, i): Verdict => {
    const decision = plan.throttled.get(i);
    if (decision) return { kind: 'throttled', decision, refund: refundOf(job) };
    if (unpaid(job).length === 0) return { kind: 'written', buckets: job.written };
    if (failure) return { kind: 'failed', error: failure.error, refund: refundOf(job) };
    if (job.rounds >= maxRounds)
      return { kind: 'failed', error: new TransientFault(`limits: too much contention after ${job.rounds} rounds`), refund: refundOf(job) };
    return { kind: 'retry', job };
  });
}

/** What an admission gives back for the layers it paid: to the lease that paid one, else to KV. */
export function refundOf(job: Job): Refund | undefined {
  if (job.op.kind !== 'admit' || job.paid.size === 0) return undefined;
  const paid = job.targets.filter((t) => job.paid.has(t.layer));
  return {
    leaseKeys: paid.filter((t) => job.fromLease.has(t.layer)).map((t) => t.key),
    targets: paid.filter((t) => !job.fromLease.has(t.layer)),
    change: { requests: 1, tokens: job.op.estimatedTokens },
  };
}
