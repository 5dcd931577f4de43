import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishEvent, putConfig } from '@sluice/bus';
import { eventually, minimalConfig, startTestBus, type TestBus } from '@sluice/bus/testing';
import { makeEvent, ServiceName, SYSTEM_TENANT, type EventDataOf } from '@sluice/contracts';
import { AdaptiveLimits } from './adaptive-feed.js';

// Each limiter replica folds every observation from the stream; a replica that starts later reads back the recent ones.
const GLOBAL = { requestsPerMinute: 100_000, tokensPerMinute: 100_000_000 };
let t: TestBus;
const raw = () => minimalConfig([{ id: 't1' }], { global: GLOBAL }) as Record<string, any>;

beforeAll(async () => {
  t = await startTestBus(raw(), { name: 'adaptive-feed' });
});
afterAll(async () => {
  await t?.stop();
});

let n = 0;
function observed(data: Partial<EventDataOf<'upstream.limits_observed'>>) {
  const at = Date.now();
  return makeEvent(
    'upstream.limits_observed',
    { requestId: `r${++n}`, tenant: SYSTEM_TENANT, service: ServiceName.Invoker, at, reason: 'test', suffix: 1 },
    { deployment: 'd1', status: 200, throttled: false, ...data },
  );
}

describe('AdaptiveLimits', () => {
  it('folds the observations of the stream into the global limit, on every replica', async () => {
    const a = new AdaptiveLimits(t.control, t.log);
    await a.start(t.bus.js);
    try {
      expect(a.rate()).toEqual(GLOBAL);
      await publishEvent(t.bus.js, observed({ limitRequests: 120, remainingRequests: 119, resetRequestsMs: 500, limitTokens: 50_000 }));
      await eventually(() => a.rate().requestsPerMinute === 120, 5000, { what: 'the stated limit' });
      await publishEvent(t.bus.js, observed({ status: 429, throttled: true, remainingRequests: 0, resetRequestsMs: 3000, retryAfterMs: 3000 }));
      await eventually(() => a.rate().requestsPerMinute === 84, 5000, { what: 'the back-off' });
      // the upstream said it had nothing left: the bucket is held near empty until it refills
      expect(a.rate().ceiling?.requests).toBeLessThan(2);

      // a replica started now reads back what the first learned
      const b = new AdaptiveLimits(t.control, t.log);
      await b.start(t.bus.js);
      try {
        await eventually(() => b.folded === 2, 5000, { what: 'the second replica to read back both observations' });
        expect(b.rate().requestsPerMinute).toBe(84);
      } finally {
        await b.stop();
      }
    } finally {
      await a.stop();
    }
  });

  it('drops what it learned while limits.adaptive.enabled is off', async () => {
    const a = new AdaptiveLimits(t.control, t.log);
    await a.start(t.bus.js);
    try {
      await eventually(() => a.rate().requestsPerMinute < GLOBAL.requestsPerMinute, 5000);
      const off = raw();
      off.limits.adaptive = { enabled: false };
      await putConfig(t.buckets, off);
      await eventually(() => !t.control.config().limits.adaptive.enabled, 5000);
      await publishEvent(t.bus.js, observed({ status: 429, throttled: true, limitRequests: 120 }));
      await eventually(() => a.rate().requestsPerMinute === GLOBAL.requestsPerMinute, 5000);
      // on again: nothing is remembered from before
      await putConfig(t.buckets, raw());
      await eventually(() => t.control.config().limits.adaptive.enabled, 5000);
      expect(a.rate()).toEqual(GLOBAL);
    } finally {
      await a.stop();
    }
  });

  it('skips an event it cannot read and goes on', async () => {
    const a = new AdaptiveLimits(t.control, t.log);
    await a.start(t.bus.js);
    try {
      const before = a.folded;
      await t.bus.js.publish('sluice.evt.upstream.limits_observed._system', 'not json');
      await publishEvent(t.bus.js, observed({ limitRequests: 90 }));
      await eventually(() => a.folded > before && a.rate().requestsPerMinute <= 90, 5000);
    } finally {
      await a.stop();
    }
  });
});
