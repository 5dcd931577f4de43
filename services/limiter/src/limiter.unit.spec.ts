import { describe, expect, it } from 'vitest';
import { adjust, admitReason, decide, layersOf, refill, throttleReason, type Buckets, type Limits, type Throttled } from './limiter.js';

const T0 = 1_700_000_000_000;
const limits: Limits = {
  user: { requestsPerMinute: 10, tokensPerMinute: 6_000 },
  tenant: { requestsPerMinute: 60, tokensPerMinute: 60_000 },
  global: { requestsPerMinute: 600, tokensPerMinute: 600_000 },
};
const full = (l: Limits): Buckets => ({
  user: { requests: l.user!.requestsPerMinute, tokens: l.user!.tokensPerMinute, at: T0 },
  tenant: { requests: l.tenant.requestsPerMinute, tokens: l.tenant.tokensPerMinute, at: T0 },
  global: { requests: l.global.requestsPerMinute, tokens: l.global.tokensPerMinute, at: T0 },
});

function throttled(d: ReturnType<typeof decide>): Throttled {
  if (d.admitted) throw new Error('expected a throttle');
  return d;
}

describe('decide', () => {
  it('admits under every limit and debits every layer', () => {
    const d = decide(full(limits), { estimatedTokens: 500 }, limits, T0);
    expect(d).toEqual({
      admitted: true,
      buckets: {
        user: { requests: 9, tokens: 5_500, at: T0 },
        tenant: { requests: 59, tokens: 59_500, at: T0 },
        global: { requests: 599, tokens: 599_500, at: T0 },
      },
    });
  });

  it("decides a virtual key's layer between the user and the tenant", () => {
    const withKey: Limits = { ...limits, key: { requestsPerMinute: 5, tokensPerMinute: 1_000 } };
    expect(layersOf(withKey)).toEqual(['user', 'key', 'tenant', 'global']);
    const { user: _, ...keyOnly } = withKey;
    expect(layersOf(keyOnly)).toEqual(['key', 'tenant', 'global']);
    const d = decide({}, { estimatedTokens: 100 }, withKey, T0);
    expect(d.admitted && d.buckets.key).toEqual({ requests: 4, tokens: 900, at: T0 });
    // the user has room for 1,200 tokens, the key not: the key's layer is the one named
    expect(throttled(decide({}, { estimatedTokens: 1_200 }, withKey, T0))).toMatchObject({ layer: 'key', limit: 'tokens', oversize: true });
    const spentKey = { key: { requests: 0.5, tokens: 1_000, at: T0 } };
    expect(throttled(decide(spentKey, { estimatedTokens: 10 }, withKey, T0))).toMatchObject({ layer: 'key', limit: 'requests' });
  });

  it('treats buckets never seen as full', () => {
    const d = decide({}, { estimatedTokens: 100 }, limits, T0);
    expect(d.admitted && d.buckets.user).toEqual({ requests: 9, tokens: 5_900, at: T0 });
  });

  it('skips the user layer for a request without a user', () => {
    const { user: _, ...noUser } = limits;
    const given = { ...full(limits), user: { requests: 0, tokens: 0, at: T0 } };
    const d = decide(given, { estimatedTokens: 100 }, noUser, T0);
    expect(d.admitted).toBe(true);
    expect(d.admitted && Object.keys(d.buckets)).toEqual(['tenant', 'global']);
  });

  it.each([
    ['user', 'requests'],
    ['tenant', 'requests'],
    ['global', 'requests'],
  ] as const)('throttles on %s %s with the time to one request', (layer, limit) => {
    const given = full(limits);
    given[layer] = { ...given[layer]!, requests: 0.5 };
    const t = throttled(decide(given, { estimatedTokens: 100 }, limits, T0));
    const perMinute = limits[layer]!.requestsPerMinute;
    expect(t).toMatchObject({ layer, limit, oversize: false });
    expect(t.retryAfterMs).toBe(Math.ceil((0.5 * 60_000) / perMinute));
  });

  it.each(['user', 'tenant', 'global'] as const)('throttles on %s tokens with the time until the estimate fits', (layer) => {
    const given = full(limits);
    given[layer] = { ...given[layer]!, tokens: 200 };
    const t = throttled(decide(given, { estimatedTokens: 500 }, limits, T0));
    expect(t).toMatchObject({ layer, limit: 'tokens', need: 500, available: 200, oversize: false });
    expect(t.retryAfterMs).toBe(Math.ceil((300 * 60_000) / limits[layer]!.tokensPerMinute));
  });

  it('names the narrowest blocking layer first', () => {
    const given = full(limits);
    given.user = { ...given.user!, requests: 0 };
    given.global = { ...given.global!, requests: 0 };
    expect(throttled(decide(given, { estimatedTokens: 1 }, limits, T0)).layer).toBe('user');
  });

  it('waits at least 1 ms even for a vanishing deficit', () => {
    const given = full(limits);
    given.tenant = { ...given.tenant!, tokens: 499.9999999 };
    expect(throttled(decide(given, { estimatedTokens: 500 }, limits, T0)).retryAfterMs).toBe(1);
  });

  it('refills continuously with the time passed as now', () => {
    const given = full(limits);
    given.user = { requests: 0, tokens: 0, at: T0 };
    // 10 req/min: one request every 6 s; 6000 tok/min: 100 tokens per second
    expect(throttled(decide(given, { estimatedTokens: 500 }, limits, T0 + 5_999)).limit).toBe('requests');
    expect(throttled(decide(given, { estimatedTokens: 700 }, limits, T0 + 6_000))).toMatchObject({ limit: 'tokens', retryAfterMs: 1_000 });
    const d = decide(given, { estimatedTokens: 600 }, limits, T0 + 6_000);
    expect(d.admitted && d.buckets.user).toEqual({ requests: 0, tokens: 0, at: T0 + 6_000 });
  });

  it('never refills above capacity', () => {
    const d = decide(full(limits), { estimatedTokens: 0 }, limits, T0 + 3_600_000);
    expect(d.admitted && d.buckets.user?.requests).toBe(9);
  });

  it('answers an estimate larger than a whole bucket as oversize, never admissible', () => {
    const t = throttled(decide(full(limits), { estimatedTokens: 6_001 }, limits, T0));
    expect(t).toMatchObject({ layer: 'user', limit: 'tokens', retryAfterMs: 60_000, oversize: true, capacity: 6_000 });
    expect(throttleReason(t)).toContain('can never pass');
  });

  it('neither checks nor debits layers already paid by an earlier partial write', () => {
    const given = full(limits);
    given.user = { requests: 0, tokens: 0, at: T0 };
    const d = decide(given, { estimatedTokens: 100, paid: ['user', 'tenant'] }, limits, T0);
    expect(d).toEqual({ admitted: true, buckets: { global: { requests: 599, tokens: 599_900, at: T0 } } });
  });
});

describe('refill and adjust', () => {
  it('does not count time twice when another replica stamped the bucket in the future', () => {
    const ahead = { requests: 0, tokens: 0, at: T0 + 1_000 };
    expect(refill(ahead, limits.user!, T0)).toEqual(ahead);
  });

  it('lets a reconciliation run a bucket into bounded debt', () => {
    const b = adjust({ requests: 5, tokens: 100, at: T0 }, limits.user!, { tokens: -10_000 }, T0);
    expect(b.tokens).toBe(-6_000);
    expect(adjust(b, limits.user!, { tokens: 20_000 }, T0).tokens).toBe(6_000);
  });
});

describe('reasons', () => {
  it('says which bucket blocked, what it had and when to retry', () => {
    const given = full(limits);
    given.tenant = { ...given.tenant!, tokens: 120.7 };
    const t = throttled(decide(given, { estimatedTokens: 300 }, limits, T0));
    expect(throttleReason(t)).toBe('tenant tokens/min: needs 300, 120 of 60000 left; retry in 0.2s');
  });

  it('names the tightest bucket on admission', () => {
    const d = decide(full(limits), { estimatedTokens: 3_000 }, limits, T0);
    expect(d.admitted && admitReason(3_000, d.buckets, limits)).toBe('estimate 3000 tokens; within limits (tightest: user tokens/min 3000 of 6000 left)');
  });
});
