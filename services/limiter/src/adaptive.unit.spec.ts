import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, type SluiceConfig } from '@sluice/contracts';
import { minimalConfig } from '@sluice/bus/testing';
import { evolve, factorAt, forget, globalLimit, initialState, type AdaptiveState, type Observation } from './adaptive.js';
import { decide, type LayerRate } from './limiter.js';

const T0 = 1_700_000_000_000;
const GLOBAL = { requestsPerMinute: 100_000, tokensPerMinute: 100_000_000 };

/** d1 alone, or d1 and d2 behind one model; adaptive settings at their defaults unless given. */
function config(adaptive: Record<string, unknown> = {}, deployments = ['d1']): SluiceConfig {
  const raw = minimalConfig([{ id: 't1' }], { global: GLOBAL, adaptive }) as Record<string, any>;
  for (const d of deployments) raw.deployments[d] = { baseUrl: 'http://127.0.0.1:1/v1', timeoutMs: 1000 };
  raw.models.m1.deployments = deployments;
  return parseConfig(raw);
}
const settings = config().limits.adaptive;

/** A clean answer: the deployment states 120 requests/min and 40,000 tokens/min. */
function ok(over: Partial<Observation> = {}): Observation {
  return {
    deployment: 'd1',
    status: 200,
    throttled: false,
    limitRequests: 120,
    remainingRequests: 100,
    resetRequestsMs: 10_000,
    limitTokens: 40_000,
    remainingTokens: 39_000,
    resetTokensMs: 1500,
    ...over,
  };
}
const throttled = (over: Partial<Observation> = {}): Observation => ok({ status: 429, throttled: true, remainingRequests: 0, retryAfterMs: 500, ...over });

function given(...steps: Array<[at: number, obs: Observation]>): AdaptiveState {
  return steps.reduce((s, [at, obs]) => evolve(s, obs.deployment, obs, at, settings), initialState);
}

describe('limits.adaptive config', () => {
  it('is on by default with the documented settings', () => {
    expect(settings).toEqual({
      enabled: true,
      backoff: 0.7,
      backoffEveryMs: 1000,
      recovery: 0.05,
      recoveryEveryMs: 10_000,
      floor: 0.1,
      forgetAfterMs: 300_000,
    });
  });

  it.each([
    [{ backoff: 1 }, 'config.limits.adaptive.backoff'],
    [{ floor: 0 }, 'config.limits.adaptive.floor'],
    [{ recoveryEveryMs: 10 }, 'config.limits.adaptive.recoveryEveryMs'],
    [{ enabled: 'yes' }, 'config.limits.adaptive.enabled'],
    [{ learn: true }, 'config.limits.adaptive.learn'],
  ])('refuses %j naming the key', (adaptive, path) => {
    expect(() => config(adaptive)).toThrow(ConfigError);
    expect(() => config(adaptive)).toThrow(path);
  });
});

describe('globalLimit', () => {
  it('is the configured limit while nothing is learned', () => {
    expect(globalLimit(initialState, config(), T0)).toEqual({ rate: GLOBAL, learnedFrom: [] });
  });

  it("takes a deployment's stated limits as the global rate", () => {
    const s = given([T0, ok()]);
    expect(globalLimit(s, config(), T0 + 1)).toMatchObject({ rate: { requestsPerMinute: 120, tokensPerMinute: 40_000 }, learnedFrom: ['d1'] });
    // once both resets have passed, the upstream is full: nothing caps the bucket below its rate
    expect(globalLimit(s, config(), T0 + 10_000)).toEqual({
      rate: { requestsPerMinute: 120, tokensPerMinute: 40_000 },
      learnedFrom: ['d1'],
      note: 'global limit learned from d1 (states 120 requests/min, 40000 tokens/min)',
    });
  });

  it('never exceeds the configured limit', () => {
    const s = given([T0, ok({ limitRequests: 10_000_000, remainingRequests: 9_999_999 })]);
    expect(globalLimit(s, config(), T0 + 1).rate.requestsPerMinute).toBe(GLOBAL.requestsPerMinute);
  });

  it('caps the bucket at what the upstream has left, refilled at its stated limit until the reset', () => {
    const s = given([T0, ok({ remainingRequests: 0, resetRequestsMs: 5000, remainingTokens: undefined })]);
    expect(globalLimit(s, config(), T0).ceiling).toEqual({ requests: 0, tokens: 40_000 });
    // 120/min is 2 a second
    expect(globalLimit(s, config(), T0 + 1500).ceiling?.requests).toBeCloseTo(3, 9);
    expect(globalLimit(s, config(), T0 + 5000).ceiling).toBeUndefined();
  });

  it('keeps the newest report of what is left when reports arrive out of order', () => {
    const s = given([T0 + 100, ok({ remainingRequests: 0 })], [T0, ok({ remainingRequests: 80 })]);
    expect(globalLimit(s, config(), T0 + 100).ceiling?.requests).toBe(0);
  });

  it('sums the deployments models route to, and stays configured while one of them is unknown', () => {
    const two = config({}, ['d1', 'd2']);
    const one = given([T0, ok()]);
    expect(globalLimit(one, two, T0)).toEqual({ rate: GLOBAL, learnedFrom: [] });
    const both = evolve(one, 'd2', ok({ deployment: 'd2', limitRequests: 60, limitTokens: 10_000 }), T0, settings);
    expect(globalLimit(both, two, T0).rate).toEqual({ requestsPerMinute: 180, tokensPerMinute: 50_000 });
  });

  it('ignores deployments no model routes to', () => {
    const s = given([T0, ok()], [T0, ok({ deployment: 'spare', limitRequests: 5 })]);
    expect(globalLimit(s, config(), T0).rate.requestsPerMinute).toBe(120);
  });

  it('forgets a deployment not heard of for forgetAfterMs', () => {
    const s = given([T0, ok()]);
    expect(globalLimit(s, config(), T0 + settings.forgetAfterMs + 1).rate).toEqual(GLOBAL);
    expect(forget(s, settings, T0 + settings.forgetAfterMs + 1)).toEqual({});
    expect(forget(s, settings, T0 + 1)).toBe(s);
  });

  it('is the configured limit when adaptation is off, whatever was learned', () => {
    const s = given([T0, throttled()]);
    expect(globalLimit(s, config({ enabled: false }), T0)).toEqual({ rate: GLOBAL, learnedFrom: [] });
  });
});

describe('back-off and recovery', () => {
  it('multiplies the rate by 0.7 on a 429', () => {
    const s = given([T0, ok()], [T0 + 10, throttled()]);
    expect(globalLimit(s, config(), T0 + 10)).toMatchObject({
      rate: { requestsPerMinute: 84 },
      note: 'global limit learned from d1 (states 120 requests/min, 40000 tokens/min, backed off to 70 %); 0 requests left upstream now',
    });
  });

  it('backs off once per backoffEveryMs, however many 429s the requests in flight bring', () => {
    const s = given([T0, throttled()], [T0 + 100, throttled()], [T0 + 900, throttled()]);
    expect(s.d1!.factor).toBeCloseTo(0.7, 9);
    const later = evolve(s, 'd1', throttled(), T0 + 1000, settings);
    expect(later.d1!.factor).toBeCloseTo(0.7 * (0.7 + (0.05 * 1000) / 10_000), 9);
  });

  it('never backs off below the floor', () => {
    let s = initialState;
    for (let i = 0; i < 30; i++) s = evolve(s, 'd1', throttled(), T0 + i * 1000, settings);
    expect(s.d1!.factor).toBe(0.1);
    expect(globalLimit(s, config(), T0 + 29_000).rate.requestsPerMinute).toBe(12);
  });

  it('recovers 5 % of the stated limit per 10 s without 429s, up to the stated limit', () => {
    const s = given([T0, throttled()]);
    expect(globalLimit(s, config(), T0 + 10_000).rate.requestsPerMinute).toBe(Math.floor(120 * 0.75));
    expect(globalLimit(s, config(), T0 + 30_000).rate.requestsPerMinute).toBe(Math.floor(120 * 0.85));
    expect(globalLimit(s, config(), T0 + 120_000).rate.requestsPerMinute).toBe(120);
    expect(factorAt(s.d1!, settings, T0 - 1000)).toBeCloseTo(0.7, 9);
  });

  it("backs off a deployment's share of the configured limit when it states none", () => {
    const bare: Observation = { deployment: 'd1', status: 429, throttled: true, retryAfterMs: 2000 };
    const s = given([T0, bare]);
    const g = globalLimit(s, config(), T0);
    expect(g.rate).toEqual({ requestsPerMinute: 70_000, tokensPerMinute: 70_000_000 });
    // a 429 without headers: nothing left until its Retry-After
    expect(g.ceiling).toEqual({ requests: 0, tokens: 70_000_000 });
    expect(globalLimit(s, config(), T0 + 2000).ceiling).toBeUndefined();
  });

  it('reads the clean answers of a healthy upstream as no change', () => {
    let s = initialState;
    for (let i = 0; i < 10; i++) s = evolve(s, 'd1', ok(), T0 + i * 1000, settings);
    expect(s.d1!.factor).toBe(1);
    expect(globalLimit(s, config(), T0 + 10_000)).toMatchObject({ rate: { requestsPerMinute: 120 }, learnedFrom: ['d1'] });
  });
});

describe('the global layer decides on what was learned', () => {
  const tenant = { requestsPerMinute: 1_000_000, tokensPerMinute: 1_000_000_000 };
  const layerRate = (s: AdaptiveState, now: number): LayerRate => {
    const { rate, ceiling } = globalLimit(s, config(), now);
    return ceiling ? { ...rate, ceiling } : rate;
  };

  it('throttles a request while the upstream has nothing left, though a minute of the rate is unused', () => {
    const s = given([T0, throttled({ resetRequestsMs: 4000 })]);
    const global = layerRate(s, T0 + 100);
    // a full global bucket, as the configured limit left it
    const buckets = { global: { requests: GLOBAL.requestsPerMinute, tokens: GLOBAL.tokensPerMinute, at: T0 } };
    const d = decide(buckets, { estimatedTokens: 10 }, { tenant, global }, T0 + 100);
    expect(d).toMatchObject({ admitted: false, layer: 'global', limit: 'requests' });
    // 84/min after the back-off; the upstream refills at its stated 120/min: one request after 500 ms
    const later = decide(buckets, { estimatedTokens: 10 }, { tenant, global: layerRate(s, T0 + 600) }, T0 + 600);
    expect(later.admitted).toBe(true);
  });

  it('admits what the configured limit admits while nothing is learned', () => {
    const d = decide({}, { estimatedTokens: 10 }, { tenant, global: layerRate(initialState, T0) }, T0);
    expect(d.admitted && d.buckets.global).toEqual({ requests: GLOBAL.requestsPerMinute - 1, tokens: GLOBAL.tokensPerMinute - 10, at: T0 });
  });
});
