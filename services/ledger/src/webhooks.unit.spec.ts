import { describe, expect, it } from 'vitest';
import { makeEvent, type Webhook } from '@sluice/contracts';
import { decideDelivery, retryDelayMs, webhooksFor, type AlertEvent } from './webhooks.js';

const T0 = Date.UTC(2026, 10, 30, 12);
const retry = { initialDelayMs: 1000, maxDelayMs: 8000, giveUpAfterMs: 60_000, timeoutMs: 5000 };
const alert: AlertEvent = makeEvent(
  'budget.threshold_crossed',
  { requestId: 'alert.t1.daily.2026-11-30.500', tenant: 't1', service: 'ledger', at: T0, reason: '50%' },
  {
    budget: 'daily',
    budgetKey: 't1.daily',
    scope: 'tenant',
    window: 'daily',
    windowId: '2026-11-30',
    resetsAt: T0 + 12 * 3_600_000,
    threshold: 0.5,
    limitUsd: 1,
    spentUsd: '0.5',
    action: 'refuse',
  },
);

describe('webhook delivery', () => {
  it('sends a tenant’s alerts to the webhooks for every tenant and to those naming it', () => {
    const hooks: Webhook[] = [
      { id: 'all', url: 'http://a', secretEnv: 'A' },
      { id: 't1', url: 'http://b', secretEnv: 'B', tenants: ['t1'] },
      { id: 't2', url: 'http://c', secretEnv: 'C', tenants: ['t2'] },
    ];
    expect(webhooksFor(hooks, 't1').map((w) => w.id)).toEqual(['all', 't1']);
    expect(webhooksFor(hooks, 't3').map((w) => w.id)).toEqual(['all']);
  });

  it('backs off exponentially from initialDelayMs to maxDelayMs', () => {
    expect([1, 2, 3, 4, 5, 50].map((a) => retryDelayMs(retry, a))).toEqual([1000, 2000, 4000, 8000, 8000, 8000]);
  });

  it('when every webhook acknowledged, records each attempt and acks the alert', () => {
    const d = decideDelivery(alert, 1, [{ webhook: 'ops', ok: true, status: 204, latencyMs: 3 }], retry, T0 + 100);
    expect(d.redeliverInMs).toBeUndefined();
    expect(d.events).toHaveLength(1);
    expect(d.events[0]).toMatchObject({
      id: 'alert.t1.daily.2026-11-30.500:alert.delivery_attempted:ops:1',
      requestId: alert.requestId,
      tenant: 't1',
      data: { alertId: alert.requestId, webhook: 'ops', attempt: 1, ok: true, status: 204, latencyMs: 3 },
    });
    expect(d.events[0]!.data.retryInMs).toBeUndefined();
  });

  it('when one failed, asks for the alert back after the backoff, saying so on the failed attempt only', () => {
    const d = decideDelivery(
      alert,
      3,
      [
        { webhook: 'ok', ok: true, status: 200, latencyMs: 2 },
        { webhook: 'down', ok: false, status: 500, latencyMs: 4 },
      ],
      retry,
      T0 + 10_000,
    );
    expect(d.redeliverInMs).toBe(4000);
    expect(d.events.map((e) => [e.id, e.data.ok, e.data.retryInMs])).toEqual([
      ['alert.t1.daily.2026-11-30.500:alert.delivery_attempted:ok:3', true, undefined],
      ['alert.t1.daily.2026-11-30.500:alert.delivery_attempted:down:3', false, 4000],
    ]);
    expect(d.events[1]!.reason).toBe('webhook down failed: HTTP 500');
  });

  it('gives up once the next try would come after giveUpAfterMs', () => {
    const late = decideDelivery(alert, 9, [{ webhook: 'down', ok: false, error: 'connect ECONNREFUSED', latencyMs: 1 }], retry, T0 + 55_000);
    expect(late.redeliverInMs).toBeUndefined();
    expect(late.events[0]!.data).toMatchObject({ ok: false, error: 'connect ECONNREFUSED', attempt: 9 });
    expect(late.events[0]!.data.retryInMs).toBeUndefined();
    expect(late.events[0]!.reason).toMatch(/gave up$/);
  });

  it('with no webhook left to try, decides nothing and acks', () => {
    expect(decideDelivery(alert, 2, [], retry, T0)).toEqual({ events: [], replies: [] });
  });
});
