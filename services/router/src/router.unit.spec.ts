import { describe, expect, it } from 'vitest';
import { parseConfig, type ChatRequest, type DegradeState } from '@sluice/contracts';
import { chatRequest } from '@sluice/contracts/testing';
import { candidatesFor, route, type RouteDecision } from './router.js';
import { bodyFacts } from '@sluice/facts';

const config = parseConfig({
  tenants: [
    { id: 'acme', keySha256: ['0'.repeat(64)] },
    { id: 'narrow', keySha256: ['1'.repeat(64)], models: ['small'] },
  ],
  limits: {
    global: { requestsPerMinute: 1000, tokensPerMinute: 1_000_000 },
    tenantDefault: { requestsPerMinute: 1000, tokensPerMinute: 1_000_000 },
    userDefault: { requestsPerMinute: 1000, tokensPerMinute: 1_000_000 },
  },
  deployments: Object.fromEntries(['d-small', 'd-mid-a', 'd-mid-b', 'd-large', 'd-backup'].map((d) => [d, { baseUrl: 'http://x/v1', timeoutMs: 1000 }])),
  models: {
    small: { deployments: ['d-small'], fallback: ['backup'], price: { inputPerMTok: 0.1, outputPerMTok: 0.1 } },
    mid: { deployments: ['d-mid-a', 'd-mid-b'], fallback: ['small'], price: { inputPerMTok: 1, outputPerMTok: 1 } },
    // large -> mid, small; mid -> small (a repeat for large); small -> backup -> small (a cycle)
    large: { deployments: ['d-large'], fallback: ['mid', 'small'], price: { inputPerMTok: 10, outputPerMTok: 10 } },
    backup: { deployments: ['d-backup'], fallback: ['small'], price: { inputPerMTok: 1, outputPerMTok: 1 } },
  },
  tiers: [
    { name: 'cheap', model: 'small', maxComplexity: 0.2 },
    { name: 'standard', model: 'mid', maxComplexity: 0.5 },
    { name: 'premium', model: 'large', maxComplexity: 0.9 },
  ],
  router: { degradedMaxTokens: 128, shedRetryAfterMs: 7000, staticFallback: 'Back soon.' },
  invoker: {},
  cache: {},
  degrader: {},
  ingress: {},
});

const level = (n: number): DegradeState => ({ level: n, since: 0, reason: 'test' });
/** The facts ingress computes for a chat body of these user turns (its complexity is what routes `auto`). */
const say = (...contents: string[]): Partial<ChatRequest> => {
  const facts = bodyFacts('chat.completions', { messages: contents.map((content) => ({ role: 'user', content })) });
  return { complexity: facts.complexity, promptTokens: facts.promptTokens };
};
const request = (over: Partial<ChatRequest> = {}): ChatRequest => chatRequest({ model: 'auto', ...say('What is the capital of France?'), ...over });

function routed(d: RouteDecision) {
  if (d.kind !== 'routed') throw new Error(`expected routed, got ${d.kind}: ${d.reason}`);
  return d;
}

const hard = `Analyze and compare these two designs, explain why one is faster, step by step:\n\`\`\`ts\n${'const a = [1, 2, 3].map((x) => x * 2);\n'.repeat(40)}\`\`\``;

describe('route at degrade level 0', () => {
  it('sends a simple auto request to the cheapest tier', () => {
    const d = routed(route({ tenant: 'acme', request: request() }, config, level(0)));
    expect(d).toMatchObject({
      tier: 'cheap',
      lane: 'standard',
      degradeLevel: 0,
      candidates: [
        { model: 'small', deployment: 'd-small' },
        { model: 'backup', deployment: 'd-backup' },
      ],
    });
    expect(d.maxTokens).toBeUndefined();
    expect(d.reason).toMatch(/^complexity 0\.0\d \(\d+ tokens, 1 turn\) -> tier cheap \(small\)/);
  });

  it('sends a middling request to the middle tier', () => {
    expect(routed(route({ tenant: 'acme', request: request(say('Please refactor this:\n```js\nx()\n```')) }, config, level(0))).tier).toBe('standard');
  });

  it('sends a hard request to the tier that covers its score, or the last tier', () => {
    const score = request(say(hard)).complexity!.score;
    expect(score).toBeGreaterThan(0.5);
    expect(score).toBeLessThanOrEqual(0.9);
    expect(routed(route({ tenant: 'acme', request: request(say(hard)) }, config, level(0))).tier).toBe('premium');
    const onlyLow = {
      ...config,
      tiers: [
        { name: 'cheap', model: 'small', maxComplexity: 0.1 },
        { name: 'standard', model: 'mid', maxComplexity: 0.2 },
      ],
    };
    expect(routed(route({ tenant: 'acme', request: request(say(hard)) }, onlyLow, level(0))).tier).toBe('standard');
  });

  it('keeps an explicit model and carries the lane', () => {
    const d = routed(route({ tenant: 'acme', request: request({ model: 'mid', priority: 'realtime' }) }, config, level(0)));
    expect(d).toMatchObject({ tier: 'explicit', lane: 'realtime', reason: expect.stringContaining('model mid named by the client') });
    expect(d.candidates.map((c) => c.deployment)).toEqual(['d-mid-a', 'd-mid-b', 'd-small', 'd-backup']);
  });

  it('sheds a model that is no longer configured or allowed', () => {
    expect(route({ tenant: 'acme', request: request({ model: 'gone' }) }, config, level(0))).toMatchObject({
      kind: 'shed',
      code: 'model_not_found',
      status: 404,
    });
    expect(route({ tenant: 'narrow', request: request({ model: 'large' }) }, config, level(0))).toMatchObject({
      kind: 'shed',
      code: 'model_not_allowed',
      status: 403,
    });
    expect(route({ tenant: 'narrow', request: request({ model: 'small' }) }, config, level(0)).kind).toBe('routed');
  });
});

describe('route with a spent downgrade budget', () => {
  const downgrade = { budget: 'daily-cap' };

  it('given a hard auto request, when its downgrade budget is spent, then it takes the cheapest tier and says which budget', () => {
    const d = routed(route({ tenant: 'acme', request: request(say(hard)), downgrade }, config, level(0)));
    expect(d).toMatchObject({ tier: 'cheap', candidates: [{ model: 'small' }, { model: 'backup' }], degradeLevel: 0 });
    expect(d.maxTokens).toBeUndefined();
    expect(d.reason).toMatch(/^budget daily-cap is spent: cheapest tier cheap \(small\) instead of auto; lane standard/);
  });

  it('given a named model, when its downgrade budget is spent, then the cheapest tier is used whatever the model', () => {
    const d = routed(route({ tenant: 'acme', request: request({ model: 'large' }), downgrade }, config, level(0)));
    expect(d.tier).toBe('cheap');
    expect(d.candidates[0]).toEqual({ model: 'small', deployment: 'd-small' });
    expect(d.reason).toContain('instead of large');
  });

  it('given an embeddings request, then it keeps its model: the tiers are chat models', () => {
    const d = routed(route({ tenant: 'acme', request: request({ endpoint: 'embeddings', model: 'mid' }), downgrade }, config, level(0)));
    expect(d.tier).toBe('explicit');
    expect(d.candidates[0]!.model).toBe('mid');
  });

  it('given degrade level 1 too, then both apply: cheapest tier and the max_tokens cap', () => {
    const d = routed(route({ tenant: 'acme', request: request({ model: 'large' }), downgrade }, config, level(1)));
    expect(d).toMatchObject({ tier: 'cheap', maxTokens: 128 });
  });

  it('given degrade level 2, then the degrade level still sheds first', () => {
    expect(route({ tenant: 'acme', request: request(), downgrade }, config, level(2)).kind).toBe('shed');
  });
});

describe('candidatesFor', () => {
  it('lists the model, then its fallbacks breadth first, each model once even through a cycle', () => {
    expect(candidatesFor(config, 'large')).toEqual([
      { model: 'large', deployment: 'd-large' },
      { model: 'mid', deployment: 'd-mid-a' },
      { model: 'mid', deployment: 'd-mid-b' },
      { model: 'small', deployment: 'd-small' },
      { model: 'backup', deployment: 'd-backup' },
    ]);
  });
});

describe('route under degradation', () => {
  it('level 1: auto takes the cheapest tier and max_tokens is capped', () => {
    const d = routed(route({ tenant: 'acme', request: request(say(hard)) }, config, level(1)));
    expect(d).toMatchObject({ tier: 'cheap', maxTokens: 128, degradeLevel: 1 });
    expect(d.reason).toContain('degrade level 1: cheapest tier cheap (small)');
  });

  it('level 1: an explicit model stays but gets the cap, a smaller max_tokens is kept', () => {
    expect(routed(route({ tenant: 'acme', request: request({ model: 'large', maxOutputTokens: 4000 }) }, config, level(1)))).toMatchObject({
      tier: 'explicit',
      maxTokens: 128,
      candidates: [{ model: 'large' }, {}, {}, {}, {}],
    });
    expect(routed(route({ tenant: 'acme', request: request({ model: 'large', maxOutputTokens: 50 }) }, config, level(1))).maxTokens).toBe(50);
  });

  it('level 2: misses are shed as busy with the configured retry-after', () => {
    expect(route({ tenant: 'acme', request: request() }, config, level(2))).toEqual({
      kind: 'shed',
      code: 'service_busy',
      status: 503,
      message: 'The gateway is shedding load; retry after the given time.',
      retryAfterMs: 7000,
      degradeLevel: 2,
      reason: 'degraded to level 2 (cached only)',
    });
  });

  it('level 3: answers with the static fallback', () => {
    expect(route({ tenant: 'acme', request: request({ model: 'gone' }) }, config, level(3))).toEqual({
      kind: 'static',
      content: 'Back soon.',
      degradeLevel: 3,
      reason: 'degraded to level 3 (static fallback)',
    });
  });

  it('level 4: holds the request for later (maintenance)', () => {
    expect(route({ tenant: 'acme', request: request() }, config, level(4))).toMatchObject({ kind: 'hold', degradeLevel: 4 });
  });
});
