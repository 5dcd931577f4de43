import { describe, expect, it } from 'vitest';
import { APIError } from 'openai';
import { eventProblem, type AnyEvent } from '@sluice/contracts';
import { createLogger } from '@sluice/telemetry';
import { LimitsObserver, observationOf, readLimits, worthReporting } from './observe-limits.js';
import { classifyError } from './retry.js';

const T0 = 1_700_000_000_000;
const openai = new Headers({
  'x-ratelimit-limit-requests': '60',
  'x-ratelimit-remaining-requests': '59',
  'x-ratelimit-reset-requests': '1s',
  'x-ratelimit-limit-tokens': '150000',
  'x-ratelimit-remaining-tokens': '149984',
  'x-ratelimit-reset-tokens': '6m0s',
});

describe('readLimits', () => {
  it("reads OpenAI's six headers, resets in ms", () => {
    expect(readLimits(openai)).toEqual({
      limitRequests: 60,
      remainingRequests: 59,
      resetRequestsMs: 1000,
      limitTokens: 150_000,
      remainingTokens: 149_984,
      resetTokensMs: 360_000,
    });
  });

  it('reads what is there and rounds a sub-ms reset up', () => {
    expect(readLimits(new Headers({ 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '500us' }))).toEqual({
      remainingRequests: 0,
      resetRequestsMs: 1,
    });
  });

  it('is undefined without any of them', () => {
    expect(readLimits(new Headers({ 'content-type': 'application/json' }))).toBeUndefined();
    expect(readLimits(undefined)).toBeUndefined();
  });

  it.each([
    ['x-ratelimit-limit-requests', '-1'],
    ['x-ratelimit-limit-requests', '1.5'],
    ['x-ratelimit-remaining-tokens', 'lots'],
    ['x-ratelimit-reset-requests', '20'],
    ['x-ratelimit-reset-tokens', 'soon'],
    ['x-ratelimit-limit-tokens', '99999999999999999999'],
  ])('leaves out %s: %j rather than guess', (name, value) => {
    expect(readLimits(new Headers({ [name]: value }))).toBeUndefined();
  });

  it("is on a 429's Failure, beside its Retry-After", () => {
    const h = new Headers(openai);
    h.set('x-ratelimit-remaining-requests', '0');
    h.set('retry-after-ms', '750');
    const failure = classifyError(APIError.generate(429, { error: { message: 'slow down', type: 'requests' } }, undefined, h), T0);
    expect(failure).toMatchObject({ status: 429, retryAfterMs: 750, limits: { limitRequests: 60, remainingRequests: 0 } });
  });
});

describe('worthReporting', () => {
  const limits = readLimits(openai)!;

  it('reports the first answer with limits, and every 429', () => {
    expect(worthReporting({ status: 200, limits }, undefined, T0)).toBe(true);
    expect(worthReporting({ status: 429 }, undefined, T0)).toBe(true);
  });

  it('never reports an answer that says nothing of limits', () => {
    expect(worthReporting({ status: 200 }, undefined, T0)).toBe(false);
    expect(worthReporting({ status: 500 }, undefined, T0)).toBe(false);
  });

  it('reports a healthy deployment once a second', () => {
    expect(worthReporting({ status: 200, limits }, T0, T0 + 999)).toBe(false);
    expect(worthReporting({ status: 200, limits }, T0, T0 + 1000)).toBe(true);
  });

  it('reports a 429, or little left, up to five times a second', () => {
    expect(worthReporting({ status: 429, limits }, T0, T0 + 199)).toBe(false);
    expect(worthReporting({ status: 429, limits }, T0, T0 + 200)).toBe(true);
    const low = { ...limits, remainingRequests: 5 };
    expect(worthReporting({ status: 200, limits: low }, T0, T0 + 200)).toBe(true);
    const lowTokens = { ...limits, remainingTokens: 14_999 };
    expect(worthReporting({ status: 200, limits: lowTokens }, T0, T0 + 200)).toBe(true);
  });
});

describe('observationOf', () => {
  it('is a well-formed event of no tenant and no request, its id naming the deployment, the request and the moment', () => {
    const e = observationOf('primary', 'req-1', { status: 429, retryAfterMs: 750.4, limits: { limitRequests: 60, remainingRequests: 0 } }, T0);
    expect(eventProblem(e)).toBeUndefined();
    expect(e).toMatchObject({
      id: `_system:upstream.limits_observed:primary:req-1:${T0}`,
      requestId: '',
      tenant: '_system',
      service: 'invoker',
      data: { deployment: 'primary', status: 429, throttled: true, retryAfterMs: 750, limitRequests: 60, remainingRequests: 0 },
    });
    expect(e.reason).toBe('primary answered 429, retry after 750 ms; 0 of 60 requests left (request req-1)');
  });

  it('carries no Retry-After for a clean answer', () => {
    const e = observationOf('primary', 'req-2', { status: 200, retryAfterMs: 10, limits: { remainingRequests: 3 } }, T0);
    expect(e.data).toEqual({ deployment: 'primary', status: 200, throttled: false, remainingRequests: 3 });
  });
});

describe('LimitsObserver', () => {
  const log = createLogger('test', 'silent');

  it('publishes what is worth reporting, per deployment, and survives a failed publish', async () => {
    const sent: AnyEvent[] = [];
    let now = T0;
    let fail = false;
    const o = new LimitsObserver(
      async (e) => {
        if (fail) throw new Error('no stream');
        sent.push(e);
      },
      log,
      () => now,
    );
    const limits = readLimits(openai)!;
    o.observe('a', 'r1', { status: 200, limits });
    o.observe('b', 'r2', { status: 200, limits });
    now += 500;
    o.observe('a', 'r3', { status: 200, limits });
    o.observe('a', 'r4', { status: 429, limits });
    fail = true;
    now += 300;
    o.observe('b', 'r5', { status: 429 });
    await new Promise((r) => setTimeout(r, 0));
    expect(sent.map((e) => e.reason.match(/request (\w+)/)?.[1])).toEqual(['r1', 'r2', 'r4']);
  });
});
