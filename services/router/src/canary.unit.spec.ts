import { describe, expect, it } from 'vitest';
import { parseConfig, type Canary, type DegradeState } from '@sluice/contracts';
import { chatRequest } from '@sluice/contracts/testing';
import { chooseVariant, cohort } from './canary.js';
import { route } from './router.js';

const config = parseConfig({
  tenants: [
    { id: 'acme', keySha256: ['0'.repeat(64)] },
    { id: 'other', keySha256: ['1'.repeat(64)] },
    { id: 'narrow', keySha256: ['2'.repeat(64)], models: ['mid', 'small'] },
  ],
  limits: {
    global: { requestsPerMinute: 1000, tokensPerMinute: 1_000_000 },
    tenantDefault: { requestsPerMinute: 1000, tokensPerMinute: 1_000_000 },
    userDefault: { requestsPerMinute: 1000, tokensPerMinute: 1_000_000 },
  },
  deployments: Object.fromEntries(['d-small', 'd-mid-a', 'd-mid-b', 'd-new'].map((d) => [d, { baseUrl: 'http://x/v1', timeoutMs: 1000 }])),
  models: {
    small: { deployments: ['d-small'], fallback: [], price: { inputPerMTok: 0.1, outputPerMTok: 0.1 } },
    mid: { deployments: ['d-mid-a', 'd-mid-b'], fallback: ['small'], price: { inputPerMTok: 1, outputPerMTok: 1 } },
    fresh: { deployments: ['d-new'], fallback: [], price: { inputPerMTok: 1, outputPerMTok: 1 } },
  },
  tiers: [{ name: 'cheap', model: 'small', maxComplexity: 1 }],
  router: { degradedMaxTokens: 128, shedRetryAfterMs: 7000, staticFallback: 'Back soon.' },
  invoker: {},
  cache: {},
  degrader: {},
  ingress: {},
  canaries: [
    {
      id: 'fresh-model',
      match: { model: 'mid' },
      baseline: 'a',
      variants: [
        { name: 'a', percent: 70 },
        { name: 'b', percent: 20, model: 'fresh' },
        { name: 'c', percent: 10, deployment: 'd-mid-b', system: 'Be brief.', params: { temperature: 0 } },
      ],
    },
  ],
});
const canaries: Canary[] = config.canaries!;
const level0: DegradeState = { level: 0, since: 0, reason: 'test' };
const asks = (user?: string, over: Parameters<typeof chatRequest>[0] = {}) => chatRequest({ model: 'mid', ...(user !== undefined ? { user } : {}), ...over });

describe('the split by cohort', () => {
  it('given 10k users, each variant gets its percent within 2 points', () => {
    const counts: Record<string, number> = { a: 0, b: 0, c: 0 };
    for (let i = 0; i < 10_000; i++) counts[chooseVariant(canaries, {}, 'acme', asks(`user-${i}`))!.variant.name]!++;
    // printed for docs/canaries.md
    console.log(`split of 10k users (70/20/10): ${JSON.stringify(counts)}`);
    expect(Math.abs(counts.a! / 100 - 70)).toBeLessThanOrEqual(2);
    expect(Math.abs(counts.b! / 100 - 20)).toBeLessThanOrEqual(2);
    expect(Math.abs(counts.c! / 100 - 10)).toBeLessThanOrEqual(2);
  });

  it('a user always gets the same variant, and a request without a user is placed by its tenant', () => {
    for (let i = 0; i < 200; i++) {
      const first = chooseVariant(canaries, {}, 'acme', asks(`u${i}`))!.variant.name;
      for (let k = 0; k < 3; k++) expect(chooseVariant(canaries, {}, 'acme', asks(`u${i}`))!.variant.name).toBe(first);
    }
    const at = cohort('fresh-model', 'acme');
    const expected = at < 70 ? 'a' : at < 90 ? 'b' : 'c';
    expect(chooseVariant(canaries, {}, 'acme', asks())).toMatchObject({
      variant: { name: expected },
      reason: expect.stringContaining('tenant acme in cohort'),
    });
  });

  it('a rolled-back canary sends every user to its baseline', () => {
    const rollbacks = { 'fresh-model': { at: 1, variant: 'b', reason: 'error rate 0.5 > 0 + 0.1' } };
    for (let i = 0; i < 500; i++) {
      const choice = chooseVariant(canaries, rollbacks, 'acme', asks(`user-${i}`))!;
      expect(choice.variant.name).toBe('a');
    }
    expect(chooseVariant(canaries, rollbacks, 'acme', asks('x'))!.reason).toBe('canary fresh-model was rolled back (error rate 0.5 > 0 + 0.1): baseline a');
  });

  it('only requests matching every given field take part', () => {
    const narrowed = [{ ...canaries[0]!, match: { tenant: 'acme', feature: 'support', model: 'mid' } }];
    expect(chooseVariant(narrowed, {}, 'acme', asks('u1', { feature: 'support' }))).toBeDefined();
    expect(chooseVariant(narrowed, {}, 'other', asks('u1', { feature: 'support' }))).toBeUndefined();
    expect(chooseVariant(narrowed, {}, 'acme', asks('u1', { feature: 'chat' }))).toBeUndefined();
    expect(chooseVariant(narrowed, {}, 'acme', asks('u1'))).toBeUndefined();
    expect(chooseVariant(canaries, {}, 'acme', asks('u1', { model: 'small' }))).toBeUndefined();
    expect(chooseVariant(canaries, {}, 'acme', asks('u1', { endpoint: 'embeddings' }))).toBeDefined();
  });
});

describe('route with a canary', () => {
  /** A user of each variant: the cohorts are deterministic, so these are found once. */
  const userOf = (name: string) => {
    for (let i = 0; ; i++) if (chooseVariant(canaries, {}, 'acme', asks(`p${i}`))!.variant.name === name) return `p${i}`;
  };

  it("a variant's model replaces the route's candidates and the decision names the variant", () => {
    const d = route({ tenant: 'acme', request: asks(userOf('b')) }, config, level0);
    expect(d).toMatchObject({ kind: 'routed', candidates: [{ model: 'fresh', deployment: 'd-new' }], variant: { canary: 'fresh-model', name: 'b' } });
    expect(d.reason).toMatch(/canary fresh-model: user p\d+ in cohort [\d.]+ -> variant b \(20 %\)/);
  });

  it("a variant's deployment goes first, alone of its model, then the fallbacks", () => {
    const d = route({ tenant: 'acme', request: asks(userOf('c')) }, config, level0);
    expect(d).toMatchObject({
      candidates: [
        { model: 'mid', deployment: 'd-mid-b' },
        { model: 'small', deployment: 'd-small' },
      ],
      variant: { name: 'c' },
    });
  });

  it('a rolled-back canary routes to the baseline, marked as its variant', () => {
    const d = route({ tenant: 'acme', request: asks(userOf('b')) }, config, level0, { 'fresh-model': { at: 1, variant: 'b', reason: 'test' } });
    expect(d).toMatchObject({ candidates: [{ deployment: 'd-mid-a' }, { deployment: 'd-mid-b' }, { deployment: 'd-small' }], variant: { name: 'a' } });
  });

  it("a variant's model the tenant may not use sends the request to the baseline, and says so", () => {
    const d = route({ tenant: 'narrow', request: asks(userOf('b')) }, config, level0);
    expect(d).toMatchObject({ candidates: [{ model: 'mid' }, { model: 'mid' }, { model: 'small' }], variant: { canary: 'fresh-model', name: 'a' } });
    expect(d.reason).toContain('-> variant b (20 %), but tenant narrow may not use fresh: baseline a');
  });

  it('a degraded or downgraded request takes no variant', () => {
    const user = userOf('b');
    const degraded = route({ tenant: 'acme', request: asks(user) }, config, { ...level0, level: 1 });
    expect(degraded).toMatchObject({ kind: 'routed', candidates: [{ model: 'mid' }, { model: 'mid' }, { model: 'small' }] });
    expect(degraded).not.toHaveProperty('variant');
    expect(route({ tenant: 'acme', request: asks(user), downgrade: { budget: 'x' } }, config, level0)).not.toHaveProperty('variant');
  });
});
