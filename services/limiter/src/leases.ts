import type { Rate } from '@sluice/contracts';
import type { Bucket, Layer } from './limiter.js';

/** Capacity this replica took from a bucket in KV and has not used yet. */
export interface Lease {
  layer: Layer;
  rate: Rate;
  requests: number;
  tokens: number;
  /** When it was last topped up; returned to the bucket `ttlMs` later if still unused. */
  takenAt: number;
}

export interface LeaseOptions {
  /** Share of a bucket's per-minute request limit one top-up takes (0.01: 1%, ~0.6 s of refill). */
  fraction: number;
  /** How long an unused remainder stays hidden from other replicas before it is given back. */
  ttlMs: number;
}

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
 * Leases by KV key. An admission whose every layer a lease covers is decided here, with no KV
 * round trip; the store takes a block for a lease whenever it writes a bucket for an admission.
 * Capacity in a lease was debited from KV first, so leases never admit more than the limit;
 * what they cost is that another replica may be throttled while this one holds a remainder,
 * until it is used or given back (`takeExpired`, `ttlMs` after the last top-up).
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

  /** Debits one request of `need` tokens from each layer's lease that covers it; returns those layers. */
  cover(keys: Partial<Record<Layer, string>>, layers: readonly Layer[], need: number): Layer[] {
    const covered: Layer[] = [];
    for (const layer of layers) {
      const lease = this.byKey.get(keys[layer]!);
      if (!lease || lease.requests < 1 || lease.tokens < need) continue;
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
