import { adjust, decide, type Bucket, type Buckets, type Layer, type Throttled } from './limiter.js';
import { planWrite } from './leases.js';
import { unpaid, type Job, type Stored, type Target } from './job.js';

/**
 * The round planner, pure: given a round's jobs, the buckets as stored (value and revision),
 * the lease's block size and `now`, it decides every job in arrival order against one working
 * copy of the buckets and plans one compare-and-set write per changed key. The executor
 * (rounds.ts) does the reads and writes; settle.ts turns the writes' outcomes into verdicts.
 */

/** The lease side of a round (leases.ts): a block's share of the request limit. */
export interface LeaseState {
  fraction: number;
}

/** What a won write of a key takes for this replica's lease. */
type LeaseTopUp = NonNullable<ReturnType<typeof planWrite>>;

/** One key's write in a round. */
export interface KeyWrite {
  key: string;
  /** What goes to KV: `shown` less the block a lease takes out. */
  value: Bucket;
  /** Compare-and-set against this revision; undefined: the key holds nothing yet (create). */
  revision?: number;
  /** The bucket as the round decided it, before the block a lease takes out. */
  shown: Bucket;
  /** What the write pays: a job (by its index in the round) and one of its layers. */
  pays: Array<[job: number, layer: Layer]>;
  lease?: LeaseTopUp;
}

export interface RoundPlan {
  writes: KeyWrite[];
  /** Admissions the round throttled, by job index; they write nothing. */
  throttled: Map<number, Throttled>;
}

/**
 * The keys a round decides on (every job's unpaid targets, once each): those `cache` holds,
 * and the ones to read. A cached revision is not re-read: the compare-and-set against it is
 * the check that nobody wrote the key since.
 */
export function readsFor(jobs: readonly Job[], cache: { get(key: string): Stored | undefined }): { cached: Map<string, Stored>; toRead: string[] } {
  const cached = new Map<string, Stored>();
  const toRead: string[] = [];
  const seen = new Set<string>();
  for (const { key } of jobs.flatMap(unpaid)) {
    if (seen.has(key)) continue;
    seen.add(key);
    const known = cache.get(key);
    if (known) cached.set(key, known);
    else toRead.push(key);
  }
  return { cached, toRead };
}

/**
 * Decides the round. `stored` has every key `readsFor` named (undefined: never written). A
 * lease's remainder is not counted (it stays in memory, see leases.ts); a key admissions write
 * also takes a fresh block for the lease.
 */
export function planRound(jobs: readonly Job[], stored: ReadonlyMap<string, Stored | undefined>, now: number, lease?: LeaseState): RoundPlan {
  const working = new Map<string, Bucket | undefined>([...stored].map(([key, s]) => [key, s?.value]));

  const touched = new Map<string, Array<[job: number, target: Target]>>();
  const touch = (job: number, target: Target, bucket: Bucket) => {
    working.set(target.key, bucket);
    const users = touched.get(target.key);
    if (users) users.push([job, target]);
    else touched.set(target.key, [[job, target]]);
  };
  const throttled = new Map<number, Throttled>();
  jobs.forEach((job, i) => {
    const targets = unpaid(job);
    const { op } = job;
    switch (op.kind) {
      case 'admit': {
        const current: Buckets = {};
        for (const t of targets) {
          const b = working.get(t.key);
          if (b) current[t.layer] = b;
        }
        const d = decide(current, { estimatedTokens: op.estimatedTokens, paid: [...job.paid] }, op.limits, now);
        if (!d.admitted) throttled.set(i, d);
        else for (const t of targets) touch(i, t, d.buckets[t.layer]!);
        break;
      }
      case 'adjust':
        for (const t of targets) touch(i, t, adjust(working.get(t.key), t.rate, op.change, now));
        break;
      default: {
        const _exhaustive: never = op;
        throw new Error(`unknown job ${String(_exhaustive)}`);
      }
    }
  });

  const writes = [...touched].map(([key, users]): KeyWrite => {
    const shown = working.get(key)!;
    const needs = users.flatMap(([i]) => {
      const { op } = jobs[i]!;
      return op.kind === 'admit' ? [op.estimatedTokens] : [];
    });
    // the lease belongs to the layer and rate of the first job that touched the key
    const [, first] = users[0]!;
    const topUp = lease ? planWrite(shown, first.layer, first.rate, needs, lease.fraction) : undefined;
    return { key, value: topUp?.value ?? shown, revision: stored.get(key)?.revision, shown, pays: users.map(([i, t]) => [i, t.layer]), lease: topUp };
  });
  return { writes, throttled };
}
