import { describe, expect, it } from 'vitest';
import { giveBack, leaseBlock, Leases, planWrite } from './leases.js';

const rate = { requestsPerMinute: 1000, tokensPerMinute: 1_000_000 };
const keys = { tenant: 't.a', global: 'g' };

describe('leaseBlock', () => {
  it('takes a share of the request limit and twice the tokens those requests need', () => {
    expect(leaseBlock({ requests: 500, tokens: 500_000, at: 0 }, rate, 100, 0.01)).toEqual({ requests: 10, tokens: 2000 });
  });

  it('never takes more than the bucket holds', () => {
    expect(leaseBlock({ requests: 3.7, tokens: 250, at: 0 }, rate, 100, 0.01)).toEqual({ requests: 3, tokens: 250 });
  });

  it('takes nothing when the block would not cover one request', () => {
    // 60/min at 1%: less than one request per block, so such buckets are always decided in KV
    expect(leaseBlock({ requests: 60, tokens: 1e6, at: 0 }, { requestsPerMinute: 60, tokensPerMinute: 1e6 }, 10, 0.01)).toBeUndefined();
    expect(leaseBlock({ requests: 0.5, tokens: 1e6, at: 0 }, rate, 10, 0.01)).toBeUndefined();
    expect(leaseBlock({ requests: 500, tokens: 50, at: 0 }, rate, 100, 0.01)).toBeUndefined();
  });
});

describe('Leases', () => {
  it('covers only the layers whose lease has a request and the tokens, and debits them', () => {
    const leases = new Leases({ fraction: 0.01, ttlMs: 1000 });
    leases.topUp('t.a', 'tenant', rate, { requests: 2, tokens: 300 }, 0);
    expect(leases.cover(keys, ['tenant', 'global'], 100, 0)).toEqual(['tenant']);
    expect(leases.cover(keys, ['tenant', 'global'], 250, 0)).toEqual([]);
    expect(leases.get('t.a')).toMatchObject({ requests: 1, tokens: 200 });
    leases.credit('t.a', 1, 100);
    expect(leases.get('t.a')).toMatchObject({ requests: 2, tokens: 300 });
  });

  it('spends a lease only within the ttl of its last top-up: an older one waits to be given back', () => {
    const leases = new Leases({ fraction: 0.01, ttlMs: 1000 });
    leases.topUp('t.a', 'tenant', rate, { requests: 3, tokens: 300 }, 0);
    expect(leases.cover(keys, ['tenant'], 100, 999)).toEqual(['tenant']);
    expect(leases.cover(keys, ['tenant'], 100, 1000)).toEqual([]);
    expect(leases.takeExpired(1000)).toMatchObject([['t.a', { requests: 2, tokens: 200 }]]);
  });

  it('adds a block to what the lease still holds, and starts its ttl again', () => {
    const leases = new Leases({ fraction: 0.01, ttlMs: 1000 });
    leases.topUp('t.a', 'tenant', rate, { requests: 3, tokens: 300 }, 0);
    leases.cover(keys, ['tenant'], 100, 0);
    leases.topUp('t.a', 'tenant', rate, { requests: 10, tokens: 2000 }, 5);
    expect(leases.get('t.a')).toMatchObject({ requests: 12, tokens: 2200, takenAt: 5 });
  });

  it('hands back leases not topped up within the ttl, or all of them', () => {
    const leases = new Leases({ fraction: 0.01, ttlMs: 1000 });
    leases.topUp('t.a', 'tenant', rate, { requests: 3, tokens: 300 }, 0);
    leases.topUp('g', 'global', rate, { requests: 3, tokens: 300 }, 900);
    expect(leases.takeExpired(1000).map(([k]) => k)).toEqual(['t.a']);
    expect(leases.takeExpired(1000, true).map(([k]) => k)).toEqual(['g']);
    expect(leases.size).toBe(0);
  });
});

describe('planWrite', () => {
  const bucket = { requests: 500, tokens: 500_000, at: 7 };

  it('takes a block out of the write for admissions, sized for the largest estimate', () => {
    expect(planWrite(bucket, 'tenant', rate, [100, 300], 0.01)).toMatchObject({
      block: { requests: 10, tokens: 6000 },
      value: { requests: 490, tokens: 494_000, at: 7 },
    });
  });

  it('with only changes, or a bucket too low for a block of one request, takes nothing', () => {
    expect(planWrite(bucket, 'tenant', rate, [], 0.01)).toBeUndefined();
    expect(planWrite({ ...bucket, requests: 0.5 }, 'tenant', rate, [100], 0.01)).toBeUndefined();
  });
});

describe('giveBack', () => {
  const lease = { layer: 'tenant' as const, rate, requests: 5, tokens: 3000, takenAt: 0 };

  it('gives the whole remainder back while the lease is within its ttl or just past it', () => {
    expect(giveBack(lease, 1000, 1000)).toEqual({ requests: 5, tokens: 3000 });
  });

  it('gives back less what the bucket refilled since the lease stopped being spent', () => {
    // 1000 requests and 1,000,000 tokens a minute: 120 ms late is 2 requests and 2000 tokens of refill
    expect(giveBack(lease, 1000 + 120, 1000)).toEqual({ requests: 3, tokens: 1000 });
    expect(giveBack(lease, 1000 + 60_000, 1000)).toEqual({ requests: 0, tokens: 0 });
  });

  it('keeps a debt whole: what a lease overspent is never forgiven', () => {
    expect(giveBack({ ...lease, requests: -1, tokens: -50 }, 60_000, 1000)).toEqual({ requests: -1, tokens: -50 });
  });
});
