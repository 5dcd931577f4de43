import { formatDuration } from '@sluice/contracts';
const MINUTE_MS = 60_000;
// Refill arithmetic is in floats; without slack, a bucket refilled for exactly
// the right time could still miss by 1e-12 and report a 1 ms retry forever.
const EPSILON = 1e-9;

/**
 * A token bucket refilled continuously at `limit` per minute, which is how OpenAI describes its
 * limits, holding at most `capacity`: the whole minute's `limit` by default, less when the
 * limit is enforced over a shorter window (OpenAI quantizes: 60,000 RPM may be enforced as
 * 1,000 per second). Pure: the caller passes the clock.
 */
export class TokenBucket {
  private level: number;
  private last: number;
  private readonly perMs: number;
  /** The most it holds: `limit` scaled to `burstSeconds`. */
  readonly capacity: number;

  constructor(
    readonly limit: number,
    now: number,
    readonly burstSeconds = 60,
  ) {
    this.capacity = burstSeconds >= 60 ? limit : Math.max(1, (limit * burstSeconds) / 60);
    this.level = this.capacity;
    this.last = now;
    this.perMs = limit / MINUTE_MS;
  }

  private refill(now: number): void {
    if (now > this.last) {
      this.level = Math.min(this.capacity, this.level + (now - this.last) * this.perMs);
      this.last = now;
    }
  }

  /** Whole units available now. */
  remaining(now: number): number {
    this.refill(now);
    return Math.floor(this.level + EPSILON);
  }

  /** Ms until `cost` units are available: 0 if now, Infinity if never (cost > capacity). */
  waitMs(cost: number, now: number): number {
    if (cost > this.capacity) return Infinity;
    this.refill(now);
    const missing = cost - this.level;
    return missing <= EPSILON ? 0 : missing / this.perMs;
  }

  /** Ms until the bucket is full again (the x-ratelimit-reset-* value). */
  resetMs(now: number): number {
    this.refill(now);
    const missing = this.capacity - this.level;
    return missing <= EPSILON ? 0 : missing / this.perMs;
  }

  /** Removes `cost` units; the caller checks {@link waitMs} first. */
  take(cost: number, now: number): void {
    this.refill(now);
    this.level -= cost;
  }

  /** Refills to capacity. */
  fill(now: number): void {
    this.level = this.capacity;
    this.last = now;
  }
}

/** Outcome of {@link RateLimiter.admit}. */
export type Admission =
  | { ok: true; headers: Record<string, string> }
  | {
      ok: false;
      kind: 'requests' | 'tokens';
      /** Ms until a retry can succeed; Infinity when the request can never fit. */
      retryAfterMs: number;
      limit: number;
      used: number;
      requested: number;
      headers: Record<string, string>;
    };

/** Requests-per-minute and tokens-per-minute buckets; either may be absent. */
export class RateLimiter {
  private requests: TokenBucket | null = null;
  private tokens: TokenBucket | null = null;

  /** `burstSeconds`: how much of a minute's limit the buckets hold (60: all of it). */
  constructor(rpm: number | null, tpm: number | null, now: number, burstSeconds = 60) {
    this.configure(rpm, tpm, now, burstSeconds);
  }

  /** Changes the limits; a bucket whose limit and burst are unchanged keeps its level. */
  configure(rpm: number | null, tpm: number | null, now: number, burstSeconds = 60): void {
    const same = (b: TokenBucket | null, limit: number) => b?.limit === limit && b.burstSeconds === burstSeconds;
    if (rpm === null) this.requests = null;
    else if (!same(this.requests, rpm)) this.requests = new TokenBucket(rpm, now, burstSeconds);
    if (tpm === null) this.tokens = null;
    else if (!same(this.tokens, tpm)) this.tokens = new TokenBucket(tpm, now, burstSeconds);
  }

  /** Refills both buckets. */
  fill(now: number): void {
    this.requests?.fill(now);
    this.tokens?.fill(now);
  }

  /**
   * Admits one request costing `tokenCost` tokens, consuming from both buckets
   * only if both have room, so a rejected request costs nothing.
   */
  admit(tokenCost: number, now: number): Admission {
    const r = this.requests;
    const t = this.tokens;
    const rWait = r === null ? 0 : r.waitMs(1, now);
    const tWait = t === null ? 0 : t.waitMs(tokenCost, now);
    if (r !== null && rWait > 0) return this.refusal('requests', r, rWait, 1, now);
    if (t !== null && tWait > 0) return this.refusal('tokens', t, tWait, tokenCost, now);
    r?.take(1, now);
    t?.take(tokenCost, now);
    return { ok: true, headers: this.headers(now) };
  }

  /** A request `bucket` cannot take now: how long to wait, and what OpenAI's 429 message states. */
  private refusal(kind: 'requests' | 'tokens', bucket: TokenBucket, retryAfterMs: number, requested: number, now: number): Admission {
    return { ok: false, kind, retryAfterMs, limit: bucket.limit, used: bucket.limit - bucket.remaining(now), requested, headers: this.headers(now) };
  }

  /** The x-ratelimit-* headers for the configured limits (none when unlimited). */
  headers(now: number): Record<string, string> {
    const h: Record<string, string> = {};
    const r = this.requests;
    const t = this.tokens;
    if (r !== null) {
      h['x-ratelimit-limit-requests'] = String(r.limit);
      h['x-ratelimit-remaining-requests'] = String(Math.max(0, r.remaining(now)));
      h['x-ratelimit-reset-requests'] = formatDuration(r.resetMs(now));
    }
    if (t !== null) {
      h['x-ratelimit-limit-tokens'] = String(t.limit);
      h['x-ratelimit-remaining-tokens'] = String(Math.max(0, t.remaining(now)));
      h['x-ratelimit-reset-tokens'] = formatDuration(t.resetMs(now));
    }
    return h;
  }
}
