import { describe, expect, it } from 'vitest';
import { isTransient, TransientFault } from '@sluice/bus';
import { newJob, targetsOf, type Job } from './job.js';
import { planRound } from './plan.js';
import { refundOf, settleRound, type Verdict } from './settle.js';
import { layersOf, type Layer, type Limits } from './limiter.js';

const NOW = 1_700_000_000_000;
const keys = { tenant: 't.a', global: 'g' };
const limits: Limits = { tenant: { requestsPerMinute: 60, tokensPerMinute: 60_000 }, global: { requestsPerMinute: 6_000, tokensPerMinute: 6_000_000 } };
const [tenant, global] = targetsOf(keys, limits, layersOf(limits));
const nothingStored = new Map([
  ['t.a', undefined],
  ['g', undefined],
]);

const admission = (estimatedTokens: number, fromLease: Layer[] = []): Job => newJob([tenant!, global!], { kind: 'admit', limits, estimatedTokens }, fromLease);
const change: Job = newJob([tenant!], { kind: 'adjust', change: { tokens: -500 } });

describe('settleRound', () => {
  it('given an admission, when both its writes win, then it is written with the buckets the round showed', () => {
    const plan = planRound([admission(100)], nothingStored, NOW);
    expect(settleRound([admission(100)], plan, [true, true], undefined, 20)).toEqual<Verdict[]>([
      { kind: 'written', buckets: { tenant: plan.writes[0]!.shown, global: plan.writes[1]!.shown } },
    ]);
  });

  it('given an admission, when the global write loses a race, then it is retried with the tenant paid', () => {
    const jobs = [admission(100)];
    const plan = planRound(jobs, nothingStored, NOW);
    const [verdict] = settleRound(jobs, plan, [true, false], undefined, 20);
    expect(verdict).toMatchObject({ kind: 'retry', job: { rounds: 1, paid: new Set(['tenant']), written: { tenant: plan.writes[0]!.shown } } });
    // the job the round was given is left as it was
    expect([...jobs[0]!.paid]).toEqual([]);
  });

  it('given an admission on its last round, when a write loses, then it fails with contention and refunds what it paid', () => {
    const job = { ...admission(100), rounds: 19 };
    const plan = planRound([job], nothingStored, NOW);
    const [verdict] = settleRound([job], plan, [true, false], undefined, 20);
    expect(verdict).toMatchObject({ kind: 'failed', error: new TransientFault('limits: too much contention after 20 rounds') });
    // contention passes: the admission is redelivered, never parked
    expect(isTransient((verdict as { error: unknown }).error)).toBe(true);
    expect(verdict).toMatchObject({ refund: { leaseKeys: [], targets: [tenant], change: { requests: 1, tokens: 100 } } });
  });

  it('given a write that failed for another reason, then the unfinished jobs fail with that error, and a finished one stands', () => {
    const jobs = [admission(100), change];
    const plan = planRound(jobs, nothingStored, NOW);
    const down = new Error('nats: timeout');
    const verdicts = settleRound(jobs, plan, [false, true], { error: down }, 20);
    expect(verdicts).toEqual<Verdict[]>([
      { kind: 'failed', error: down, refund: { leaseKeys: [], targets: [global!], change: { requests: 1, tokens: 100 } } },
      { kind: 'failed', error: down, refund: undefined },
    ]);
  });

  it('given an admission a lease paid global for, when the round throttles it on tenant, then the lease gets it back', () => {
    const job = admission(100, ['global']);
    const plan = planRound([job], new Map([['t.a', { value: { requests: 0, tokens: 0, at: NOW }, revision: 5 }]]), NOW);
    expect(plan.writes).toEqual([]);
    expect(settleRound([job], plan, [], undefined, 20)).toEqual<Verdict[]>([
      { kind: 'throttled', decision: plan.throttled.get(0)!, refund: { leaseKeys: ['g'], targets: [], change: { requests: 1, tokens: 100 } } },
    ]);
  });

  it('given an admission that paid tenant in an earlier round, when the retry throttles on global, then KV gets the tenant back', () => {
    const job = { ...admission(100), paid: new Set<Layer>(['tenant']), rounds: 1 };
    const plan = planRound([job], new Map([['g', { value: { requests: 0, tokens: 0, at: NOW }, revision: 8 }]]), NOW);
    const [verdict] = settleRound([job], plan, [], undefined, 20);
    expect(verdict).toMatchObject({ kind: 'throttled', decision: { layer: 'global', limit: 'requests' } });
    expect(verdict).toMatchObject({ refund: { leaseKeys: [], targets: [tenant], change: { requests: 1, tokens: 100 } } });
  });
});

describe('refundOf', () => {
  it('gives an admission back to the lease that paid a layer and to KV for the others', () => {
    const job = { ...admission(100, ['global']), paid: new Set<Layer>(['global', 'tenant']) };
    expect(refundOf(job)).toEqual({ leaseKeys: ['g'], targets: [tenant], change: { requests: 1, tokens: 100 } });
  });

  it('gives nothing back for an admission that paid nothing, or for a change', () => {
    expect(refundOf(admission(100))).toBeUndefined();
    expect(refundOf({ ...change, paid: new Set<Layer>(['tenant']) })).toBeUndefined();
  });
});
