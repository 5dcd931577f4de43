import { describe, expect, it } from 'vitest';
import { newJob, targetsOf, type Job, type Stored } from './job.js';
import { planRound, readsFor } from './plan.js';
import { layersOf, type Layer, type Limits } from './limiter.js';

const NOW = 1_700_000_000_000;
const keys = { tenant: 't.a', global: 'g' };
const limits: Limits = { tenant: { requestsPerMinute: 60, tokensPerMinute: 60_000 }, global: { requestsPerMinute: 6_000, tokensPerMinute: 6_000_000 } };

function admission(estimatedTokens: number, paid: Layer[] = []): Job {
  const job = newJob(targetsOf(keys, limits, layersOf(limits)), { kind: 'admit', limits, estimatedTokens });
  return { ...job, paid: new Set(paid) };
}
const change = (tokens: number): Job => newJob(targetsOf(keys, limits, ['tenant']), { kind: 'adjust', change: { tokens } });
const stored = (entries: Record<string, Stored | undefined>) => new Map(Object.entries(entries));

describe('readsFor', () => {
  it('given one key cached, when jobs touch it and another, then only the other is read, once', () => {
    const cached: Stored = { value: { requests: 10, tokens: 5_000, at: NOW }, revision: 7 };
    const plan = readsFor([admission(100), admission(100), change(-50)], stored({ g: cached }));
    expect(plan.toRead).toEqual(['t.a']);
    expect([...plan.cached]).toEqual([['g', cached]]);
  });

  it('given a job that paid the tenant layer, then its tenant key is not wanted', () => {
    expect(readsFor([admission(100, ['tenant'])], new Map()).toRead).toEqual(['g']);
  });
});

describe('planRound', () => {
  const empty = stored({ 't.a': undefined, g: undefined });

  it('given nothing stored, when two admissions share keys, then each key is created once with both debits', () => {
    const { writes, throttled } = planRound([admission(100), admission(200)], empty, NOW);
    expect(throttled.size).toBe(0);
    expect(writes).toEqual([
      {
        key: 't.a',
        value: { requests: 58, tokens: 59_700, at: NOW },
        shown: { requests: 58, tokens: 59_700, at: NOW },
        pays: [
          [0, 'tenant'],
          [1, 'tenant'],
        ],
      },
      {
        key: 'g',
        value: { requests: 5_998, tokens: 5_999_700, at: NOW },
        shown: { requests: 5_998, tokens: 5_999_700, at: NOW },
        pays: [
          [0, 'global'],
          [1, 'global'],
        ],
      },
    ]);
    expect(writes.map((w) => w.revision)).toEqual([undefined, undefined]);
  });

  it('given a stored bucket, then its write expects the revision it was read at', () => {
    const { writes } = planRound([admission(100)], stored({ 't.a': { value: { requests: 10, tokens: 5_000, at: NOW }, revision: 7 }, g: undefined }), NOW);
    expect(writes[0]).toMatchObject({ key: 't.a', revision: 7, value: { requests: 9, tokens: 4_900 } });
  });

  it('given one request left, when two admissions arrive, then the second is throttled on what the first took and writes nothing', () => {
    const { writes, throttled } = planRound(
      [admission(100), admission(100)],
      stored({ 't.a': { value: { requests: 1, tokens: 5_000, at: NOW }, revision: 3 }, g: undefined }),
      NOW,
    );
    expect(throttled.get(1)).toMatchObject({ admitted: false, layer: 'tenant', limit: 'requests', retryAfterMs: 1_000 });
    expect(writes.map((w) => [w.key, w.pays])).toEqual([
      ['t.a', [[0, 'tenant']]],
      ['g', [[0, 'global']]],
    ]);
  });

  it('given a retried admission that paid the tenant, then only the global layer is decided and written', () => {
    const globalOnly = stored({ g: undefined });
    const { writes, throttled } = planRound([admission(100, ['tenant'])], globalOnly, NOW);
    expect(throttled.size).toBe(0);
    expect(writes).toMatchObject([{ key: 'g', pays: [[0, 'global']] }]);
  });

  it('given a change to one key, then it is written without any check, even into debt', () => {
    const { writes, throttled } = planRound([change(-70_000)], stored({ 't.a': { value: { requests: 10, tokens: 5_000, at: NOW }, revision: 4 } }), NOW);
    expect(throttled.size).toBe(0);
    expect(writes).toEqual([
      { key: 't.a', revision: 4, value: { requests: 10, tokens: -60_000, at: NOW }, shown: { requests: 10, tokens: -60_000, at: NOW }, pays: [[0, 'tenant']] },
    ]);
  });

  describe('with leases', () => {
    const tenant = { value: { requests: 30, tokens: 30_000, at: NOW }, revision: 9 };

    it('when an admission writes the key, then it is decided on the bucket alone and a fresh block is taken out', () => {
      const { writes } = planRound([admission(100)], stored({ 't.a': tenant, g: undefined }), NOW, { fraction: 0.1 });
      const [t] = writes;
      // 30 less this admission: 29 requests shown; a block of 10% of 60/min is 6
      expect(t).toMatchObject({ key: 't.a', revision: 9, shown: { requests: 29, tokens: 29_900 }, value: { requests: 23, tokens: 28_700 } });
      expect(t!.lease).toMatchObject({ layer: 'tenant', block: { requests: 6, tokens: 1_200 } });
    });

    it('when only a change writes the key, then no block is taken', () => {
      const { writes } = planRound([change(-500)], stored({ 't.a': tenant }), NOW, { fraction: 0.1 });
      expect(writes[0]).toMatchObject({ value: { requests: 30, tokens: 29_500 } });
      expect(writes[0]!.lease).toBeUndefined();
    });

    it('given a limit too small for a block, then the plain write stands', () => {
      const { writes } = planRound([admission(100)], stored({ 't.a': tenant, g: undefined }), NOW, { fraction: 0.01 });
      expect(writes[0]!.lease).toBeUndefined();
      expect(writes[0]!.value).toEqual(writes[0]!.shown);
    });
  });
});
