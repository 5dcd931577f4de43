import type { Rate } from '@sluice/contracts';
import type { Bucket, Layer } from './limiter.js';

/** Capacity this replica took from a bucket in KV and has not used yet. */
export interface Lease {
  layer: Layer;
  rate: Rate;
  requests: number;
  tokens: number;
  /** When it was last topped up; spent only until `ttlMs` later, then given back if unused. */
  takenAt: number;
}

export interface LeaseOptions {
  /** Share of a bucket's per-minute request limit one top-up takes (0.01: 1%, ~0.6 s of refill). */
  fraction: number;
  /**
   * How long after its last top-up a lease may be spent (and is hidden from other replicas).
   * No longer than its bucket takes to refill one block (`fraction` of a minute): a bucket
   * refills to full while blocks are out, so if every replica's block outlived that, a burst
   * could exceed a full bucket by a block per replica; within it, by about one block in all.
   */
  ttlMs: number;
}

/**
 * The limiter service's leases: blocks of 1% of a bucket's per-minute requests, spent for at
 * most 0.6 s (the time the bucket takes to refill 1%), so that by our reckoning (not proven)
 * the blocks of any number of replicas let a burst exceed a full bucket by about 1% in all. With
 * 2 s, the figure before, three replicas that took blocks from a nearly full 120/min bucket
 * admitted 123 after it refilled (replicas.int.spec.ts, warm).
 */
export const serviceLeases: LeaseOptions = { fraction: 0.01, ttlMs: 600 };

/**
 * What a lease tops up from `bucket` (already debited by this round) for requests like one
 * needing `need` tokens: up to `fraction` of the request limit and twice their tokens, never
 * more than the bucket holds. Undefined when the block would not cover even one request, so
 * small limits (a user at 60/min) are always decided in KV. Pure.
 */
export function leaseBlock(bucket: Bucket, rate: Rate, need: number, fraction: number): { requests: number; tokens: number } | undefined {
  const requests = Math.min(Math.floor(rate.requestsPerMinute * fraction), Math.floor(bucket.requests));
  if (requests < 1) return undefined;
  const tokens = Math.min(Math.max(0, bucket.tokens), requests * need * 2);
  if (tokens < need) return undefined;
  return { requests, tokens };
}

export type Remainder = { requests: number; tokens: number };

/**
 * What a round writes for a key when leases are on: when admissions (`needs`, their token
 * estimates) touched the key, a fresh block is taken out of `bucket` (as the round decided it)
 * in the same write. Undefined when none is (the plain write stands).
 */
export function planWrite(bucket: Bucket, layer: Layer, rate: Rate, needs: number[], fraction: number) {
  const block = needs.length > 0 ? leaseBlock(bucket, rate, Math.max(...needs), fraction) : undefined;
  if (!block) return undefined;
  return { layer, rate, block, value: { ...bucket, requests: bucket.requests - block.requests, tokens: bucket.tokens - block.tokens } };
}

/**
 * What an unused lease gives back to its bucket at `now`: its remainder, less what the bucket
 * refilled since the lease stopped being spent (`ttlMs` after its last top-up). A bucket that
 * refilled to full meanwhile could not have held both; a remainder credited late on top of the
 * refill, after a burst had taken the bucket down again, would count twice. Errs towards
 * throttling when the bucket was not full. Pure.
 */
export function giveBack(lease: Lease, now: number, ttlMs: number): Remainder {
  const late = Math.max(0, now - lease.takenAt - ttlMs);
  return {
    requests: lease.requests > 0 ? Math.max(0, lease.requests - (late * lease.rate.requestsPerMinute) / 60_000) : lease.requests,
    tokens: lease.tokens > 0 ? Math.max(0, lease.tokens - (late * lease.rate.tokensPerMinute) / 60_000) : lease.tokens,
  };
}

/**
 * Leases by KV key. An admission whose every layer a lease covers is decided here, with no KV
 * round trip; the store takes a block for a lease whenever it writes a bucket for an admission.
 * Capacity in a lease was debited from KV first, so leases never admit more than the limit;
 * what they cost is that another replica may be throttled while this one holds a remainder,
 * until it is used or given back (`takeExpired`, `ttlMs` to twice that after the last top-up).
 *
 * A round decides on the bucket in KV alone and never folds a remainder into its write: a
 * remainder is in memory or in the bucket, never in both. (Folding it in, as rounds did, let an
 * admission here spend it while the write giving it back was in flight: two admissions from a
 * bucket's last request. Taking it out of the lease for the write instead sent every admission
 * that arrived meanwhile to KV, five times the writes.)
 */
export class Leases {
  private readonly byKey = new Map<string, Lease>();

  constructor(readonly opts: LeaseOptions) {}

  /**
   * Debits one request of `need` tokens from each layer's lease that covers it and was topped up
   * within `ttlMs` of `now`; returns those layers. An older lease waits to be given back.
   */
  cover(keys: Partial<Record<Layer, string>>, layers: readonly Layer[], need: number, now: number): Layer[] {
    const covered: Layer[] = [];
    for (const layer of layers) {
      const lease = this.byKey.get(keys[layer]!);
      if (!lease || lease.requests < 1 || lease.tokens < need || lease.takenAt <= now - this.opts.ttlMs) continue;
      lease.requests -= 1;
      lease.tokens -= need;
      covered.push(layer);
    }
    return covered;
  }

  /** Gives back what `cover` took for a request that was throttled on another layer. */
  credit(key: string, requests: number, tokens: number): void {
    const lease = this.byKey.get(key);
    if (!lease) return;
    lease.requests += requests;
    lease.tokens += tokens;
  }

  /** Adds a block a won write took out of the bucket (a new lease if there is none); its ttl starts again at `now`. */
  topUp(key: string, layer: Layer, rate: Rate, block: Remainder, now: number): void {
    const lease = this.byKey.get(key);
    if (!lease) {
      this.byKey.set(key, { layer, rate, requests: block.requests, tokens: block.tokens, takenAt: now });
      return;
    }
    lease.requests += block.requests;
    lease.tokens += block.tokens;
    lease.takenAt = now;
  }

  get(key: string): Lease | undefined {
    return this.byKey.get(key);
  }

  /** Removes and returns the leases not topped up for `ttlMs` (all of them with `all`). */
  takeExpired(now: number, all = false): Array<[string, Lease]> {
    const out: Array<[string, Lease]> = [];
    for (const [key, lease] of this.byKey) {
      if (all || lease.takenAt <= now - this.opts.ttlMs) {
        this.byKey.delete(key);
        out.push([key, lease]);
      }
    }
    return out;
  }

  get size(): number {
    return this.byKey.size;
  }
}
