import type { Rate } from '@sluice/contracts';
import { rateOf, type Bucket, type Buckets, type Layer, type Limits } from './limiter.js';
import type { LimitKeys } from './keys.js';

/** A change applied without any check: positive credits, negative debits. */
export type Change = { requests?: number; tokens?: number };

/** One bucket a job writes: its KV key, the layer it is for and that layer's rate. */
export interface Target {
  key: string;
  layer: Layer;
  rate: Rate;
}

/** A bucket as a round knows it: its value and the revision a compare-and-set expects. */
export interface Stored {
  value: Bucket;
  revision: number;
}

/**
 * Work for the store's rounds: an admission to decide on its limits, or a change applied
 * unconditionally (refund, reconciliation, a lease given back). Jobs are values: a round
 * that leaves a job unfinished hands back the next version of it (settle.ts).
 */
export interface Job {
  /** One per layer, narrowest first; an admission's are `layersOf(limits)`. */
  targets: readonly Target[];
  op: { kind: 'admit'; limits: Limits; estimatedTokens: number } | { kind: 'adjust'; change: Change };
  /** Layers already debited (by a won write, or by a lease before the job was queued). */
  paid: ReadonlySet<Layer>;
  /** Paid layers a lease covered (a refund goes back to the lease, not to KV). */
  fromLease: ReadonlySet<Layer>;
  /** The buckets as each paid layer's write showed them: what an admission reports. */
  written: Buckets;
  /** Rounds taken so far. */
  rounds: number;
}

/** The targets of `layers` (narrowest first); throws when a layer has no key or no limits. */
export function targetsOf(keys: LimitKeys, limits: Limits, layers: readonly Layer[]): Target[] {
  return layers.map((layer) => {
    const key = keys[layer];
    if (key === undefined) throw new Error(`limits: no key for the ${layer} layer`);
    return { key, layer, rate: rateOf(limits, layer) };
  });
}

/** A job as first queued: nothing written yet, `fromLease` already paid. */
export function newJob(targets: readonly Target[], op: Job['op'], fromLease: readonly Layer[] = []): Job {
  return { targets, op, paid: new Set(fromLease), fromLease: new Set(fromLease), written: {}, rounds: 0 };
}

/** The targets a round still has to write for the job. */
export function unpaid(job: Job): Target[] {
  return job.targets.filter((t) => !job.paid.has(t.layer));
}
