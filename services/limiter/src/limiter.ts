import type { Rate } from '@sluice/contracts';

/**
 * The admission decision: token buckets for requests/min and tokens/min at up to four layers.
 * Pure — state and `now` come in, the decision and the next state go out.
 */

export type Layer = 'user' | 'key' | 'tenant' | 'global';
type LimitKind = 'requests' | 'tokens';

/**
 * One layer's bucket: its levels as of `at` (epoch ms). Capacity is the per-minute limit and
 * both levels refill continuously at limit/60000 per ms. Levels may go below zero after a
 * reconciliation found a request used more than estimated (debt, paid back by refill).
 */
export interface Bucket {
  requests: number;
  tokens: number;
  at: number;
}

/** Buckets by layer; an absent bucket has never been used and counts as full. */
export type Buckets = Partial<Record<Layer, Bucket>>;

/**
 * A layer's rate. `ceiling` holds its bucket's levels below the per-minute rate for now: the
 * global layer's while the upstreams say they have less left than a minute's worth (adaptive.ts).
 * `note` says where a learned rate came from, for a throttle's reason.
 */
export type LayerRate = Rate & { ceiling?: { requests: number; tokens: number }; note?: string };

/**
 * Limits by layer; no `user` means the request has no user and skips the user layer, no `key`
 * that it came without a virtual key that has limits of its own.
 */
export interface Limits {
  user?: Rate;
  key?: Rate;
  tenant: Rate;
  global: LayerRate;
}

export interface Demand {
  estimatedTokens: number;
  /**
   * Layers already debited for this request by an earlier attempt whose other writes lost a
   * compare-and-set race; they are neither checked nor debited again.
   */
  paid?: readonly Layer[];
}

interface Admitted {
  admitted: true;
  /** The debited buckets of every layer decided on (the unpaid ones). */
  buckets: Buckets;
}

export interface Throttled {
  admitted: false;
  layer: Layer;
  limit: LimitKind;
  retryAfterMs: number;
  /** What the request needed from the blocking bucket, what it had, and its capacity. */
  need: number;
  available: number;
  capacity: number;
  /** The estimate exceeds the whole per-minute token limit: waiting never helps. */
  oversize: boolean;
}

export type Decision = Admitted | Throttled;

/** Retry-after for a request that can never pass: one full refill, so a client backs off properly. */
const OVERSIZE_RETRY_AFTER_MS = 60_000;

/** The layers a request is decided on, in check order (narrowest first: user, key, tenant, global). */
export function layersOf(limits: Limits): Layer[] {
  const layers: Layer[] = [];
  if (limits.user) layers.push('user');
  if (limits.key) layers.push('key');
  layers.push('tenant', 'global');
  return layers;
}

export function rateOf(limits: Limits, layer: Layer): Rate {
  const rate = limits[layer];
  if (!rate) throw new Error(`no ${layer} limits`);
  return rate;
}

/** The bucket as of `now`: refilled for the time passed, never above capacity (nor the rate's ceiling). */
export function refill(bucket: Bucket | undefined, rate: LayerRate, now: number): Bucket {
  const most = {
    requests: Math.min(rate.requestsPerMinute, rate.ceiling?.requests ?? Infinity),
    tokens: Math.min(rate.tokensPerMinute, rate.ceiling?.tokens ?? Infinity),
  };
  if (!bucket) return { ...most, at: now };
  // another replica's clock may be ahead: never refill backwards, and keep the later stamp
  // so that time is not counted twice
  const elapsed = Math.max(0, now - bucket.at);
  return {
    requests: Math.min(most.requests, bucket.requests + (elapsed * rate.requestsPerMinute) / 60_000),
    tokens: Math.min(most.tokens, bucket.tokens + (elapsed * rate.tokensPerMinute) / 60_000),
    at: Math.max(bucket.at, now),
  };
}

/**
 * Adds to (credit, positive) or takes from (debit, negative) a bucket without any check:
 * refunds and usage reconciliation. Levels stay within [-capacity, capacity].
 */
export function adjust(bucket: Bucket | undefined, rate: Rate, change: { requests?: number; tokens?: number }, now: number): Bucket {
  const b = refill(bucket, rate, now);
  const clamp = (v: number, cap: number) => Math.max(-cap, Math.min(cap, v));
  return {
    requests: clamp(b.requests + (change.requests ?? 0), rate.requestsPerMinute),
    tokens: clamp(b.tokens + (change.tokens ?? 0), rate.tokensPerMinute),
    at: b.at,
  };
}

/** Milliseconds until a bucket refilling at `perMinute` gains `deficit` (ceil, at least 1). */
function waitFor(deficit: number, perMinute: number): number {
  return Math.max(1, Math.ceil((deficit * 60_000) / perMinute));
}

/**
 * Admits a request only if every layer has both one request and `estimatedTokens` tokens;
 * then every layer is debited. Otherwise names the first layer (user, key, tenant, global) and
 * limit kind that blocks, and when it will have enough.
 *
 * @example
 * const d = decide({}, { estimatedTokens: 300 }, { tenant, global }, Date.now());
 * if (d.admitted) await write(d.buckets);
 */
export function decide(buckets: Buckets, demand: Demand, limits: Limits, now: number): Decision {
  const paid = new Set(demand.paid ?? []);
  const layers = layersOf(limits).filter((l) => !paid.has(l));
  const need = demand.estimatedTokens;

  for (const layer of layers) {
    const capacity = rateOf(limits, layer).tokensPerMinute;
    if (need > capacity) {
      return { admitted: false, layer, limit: 'tokens', retryAfterMs: OVERSIZE_RETRY_AFTER_MS, need, available: capacity, capacity, oversize: true };
    }
  }

  const next: Buckets = {};
  for (const layer of layers) {
    const rate = rateOf(limits, layer);
    const b = refill(buckets[layer], rate, now);
    if (b.requests < 1) {
      const retryAfterMs = waitFor(1 - b.requests, rate.requestsPerMinute);
      return { admitted: false, layer, limit: 'requests', retryAfterMs, need: 1, available: b.requests, capacity: rate.requestsPerMinute, oversize: false };
    }
    if (b.tokens < need) {
      const retryAfterMs = waitFor(need - b.tokens, rate.tokensPerMinute);
      return { admitted: false, layer, limit: 'tokens', retryAfterMs, need, available: b.tokens, capacity: rate.tokensPerMinute, oversize: false };
    }
    next[layer] = { requests: b.requests - 1, tokens: b.tokens - need, at: b.at };
  }
  return { admitted: true, buckets: next };
}

/** The reason a person reads on the timeline for a throttle. */
export function throttleReason(t: Throttled): string {
  const what = `${t.layer} ${t.limit}/min`;
  if (t.oversize) {
    return `${what}: estimate of ${t.need} tokens exceeds the whole per-minute limit of ${t.capacity}, so it can never pass; shorten the prompt or lower max_tokens`;
  }
  const left = Math.max(0, Math.floor(t.available));
  return `${what}: needs ${t.need}, ${left} of ${t.capacity} left; retry in ${(t.retryAfterMs / 1000).toFixed(1)}s`;
}

/** The reason for an admission: the estimate and the tightest bucket after the debit. */
export function admitReason(estimatedTokens: number, buckets: Buckets, limits: Limits): string {
  let tightest: { text: string; share: number } | undefined;
  for (const layer of layersOf(limits)) {
    const b = buckets[layer];
    if (!b) continue;
    const rate = rateOf(limits, layer);
    for (const [kind, left, cap] of [
      ['requests', b.requests, rate.requestsPerMinute],
      ['tokens', b.tokens, rate.tokensPerMinute],
    ] as const) {
      const share = left / cap;
      if (!tightest || share < tightest.share) tightest = { text: `${layer} ${kind}/min ${Math.floor(left)} of ${cap} left`, share };
    }
  }
  return `estimate ${estimatedTokens} tokens; within limits${tightest ? ` (tightest: ${tightest.text})` : ''}`;
}
