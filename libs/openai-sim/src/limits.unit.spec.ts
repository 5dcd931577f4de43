import { describe, expect, it } from 'vitest';
import { RateLimiter, TokenBucket } from './limits.js';

describe('TokenBucket', () => {
  it('starts full and refills at capacity per minute', () => {
    const b = new TokenBucket(60, 0);
    expect(b.remaining(0)).toBe(60);
    b.take(60, 0);
    expect(b.remaining(0)).toBe(0);
    expect(b.waitMs(1, 0)).toBeCloseTo(1000, 6);
    expect(b.remaining(999)).toBe(0);
    expect(b.remaining(1000)).toBe(1);
    expect(b.remaining(10 * 60_000)).toBe(60);
  });

  it('reports Infinity for a cost larger than the capacity', () => {
    expect(new TokenBucket(10, 0).waitMs(11, 0)).toBe(Infinity);
  });

  it('reports the time to refill completely', () => {
    const b = new TokenBucket(600, 0);
    b.take(300, 0);
    expect(b.resetMs(0)).toBeCloseTo(30_000, 6);
    b.fill(5);
    expect(b.resetMs(5)).toBe(0);
  });
});

describe('TokenBucket with a burst shorter than the minute', () => {
  it('holds burstSeconds of the limit but refills at the per-minute rate', () => {
    const b = new TokenBucket(120, 0, 5);
    expect(b.limit).toBe(120);
    expect(b.remaining(0)).toBe(10);
    b.take(10, 0);
    // 2 per second, as 120/min
    expect(b.remaining(1000)).toBe(2);
    expect(b.resetMs(1000)).toBeCloseTo(4000, 6);
    expect(b.remaining(60_000)).toBe(10);
  });

  it('never holds less than one unit', () => {
    expect(new TokenBucket(6, 0, 1).capacity).toBe(1);
  });
});

describe('RateLimiter with a burst', () => {
  it('states the per-minute limit and what is left of the burst', () => {
    const l = new RateLimiter(120, null, 0, 1);
    expect(l.admit(0, 0).ok).toBe(true);
    expect(l.admit(0, 0).ok).toBe(true);
    const refused = l.admit(0, 0);
    expect(refused).toMatchObject({ ok: false, kind: 'requests', limit: 120 });
    expect(refused.headers['x-ratelimit-limit-requests']).toBe('120');
    expect(refused.headers['x-ratelimit-remaining-requests']).toBe('0');
    expect(refused.headers['x-ratelimit-reset-requests']).toBe('1s');
  });

  it('a new burst replaces the buckets; the same one keeps their levels', () => {
    const l = new RateLimiter(60, null, 0);
    l.admit(0, 0);
    l.configure(60, null, 0);
    expect(l.headers(0)['x-ratelimit-remaining-requests']).toBe('59');
    l.configure(60, null, 0, 10);
    expect(l.headers(0)['x-ratelimit-remaining-requests']).toBe('10');
  });
});

describe('RateLimiter', () => {
  it('admits up to the request limit, then rejects without consuming', () => {
    const l = new RateLimiter(2, null, 0);
    expect(l.admit(10, 0).ok).toBe(true);
    expect(l.admit(10, 0).ok).toBe(true);
    const r = l.admit(10, 0);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.kind).toBe('requests');
    expect(r.retryAfterMs).toBeCloseTo(30_000, 6);
    expect(r.headers['x-ratelimit-remaining-requests']).toBe('0');
    expect(l.admit(10, 30_000).ok).toBe(true);
  });

  it('rejects on tokens and leaves the request bucket untouched', () => {
    const l = new RateLimiter(100, 1000, 0);
    expect(l.admit(900, 0).ok).toBe(true);
    const r = l.admit(200, 0);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.kind).toBe('tokens');
    expect(r.requested).toBe(200);
    expect(r.used).toBe(900);
    expect(r.retryAfterMs).toBeCloseTo(6_000, 6);
    expect(l.headers(0)['x-ratelimit-remaining-requests']).toBe('99');
  });

  it('emits only the headers of configured limits', () => {
    expect(new RateLimiter(null, null, 0).headers(0)).toEqual({});
    const h = new RateLimiter(null, 1000, 0).headers(0);
    expect(Object.keys(h).sort()).toEqual(['x-ratelimit-limit-tokens', 'x-ratelimit-remaining-tokens', 'x-ratelimit-reset-tokens']);
  });

  it('keeps a bucket whose limit is unchanged and replaces a changed one', () => {
    const l = new RateLimiter(10, null, 0);
    l.admit(0, 0);
    l.configure(10, null, 0);
    expect(l.headers(0)['x-ratelimit-remaining-requests']).toBe('9');
    l.configure(20, null, 0);
    expect(l.headers(0)['x-ratelimit-remaining-requests']).toBe('20');
    l.configure(null, null, 0);
    expect(l.admit(1e9, 0).ok).toBe(true);
  });

  it('fill() refills both buckets', () => {
    const l = new RateLimiter(1, 100, 0);
    l.admit(100, 0);
    expect(l.admit(1, 0).ok).toBe(false);
    l.fill(0);
    expect(l.admit(100, 0).ok).toBe(true);
  });
});
