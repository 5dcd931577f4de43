// Webhook delivery of budget alerts against a real nats-server and real HTTP receivers: signed
// POSTs, retries with backoff until a 2xx, a webhook that acknowledged is not POSTed again, and
// every attempt is an event.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consumeEvents, publishEvent, type Consumption } from '@sluice/bus';
import { collectEvents, eventually, minimalConfig, startTestBus, type TestBus } from '@sluice/bus/testing';
import { freePort } from '@sluice/bus/nats-server';
import { Consumers, makeEvent, Topology, verifySignature, WebhookHeaders, type SluiceEvent } from '@sluice/contracts';
import { alertDeliveryHandler } from './deliver.js';
import type { AlertEvent } from './webhooks.js';

const SECRETS = { STEADY_SECRET: 'whsec_steady', FLAKY_SECRET: 'whsec_flaky', DEAD_SECRET: 'whsec_dead' };

interface Received {
  body: string;
  signature: string | undefined;
  eventId: string | undefined;
}

/** A real receiver that answers each POST with the next status of `statuses` (the last one after that). */
async function receiver(statuses: number[]): Promise<{ url: string; got: Received[]; server: Server }> {
  const got: Received[] = [];
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      got.push({
        body: Buffer.concat(parts).toString('utf8'),
        signature: req.headers[WebhookHeaders.signature] as string,
        eventId: req.headers[WebhookHeaders.eventId] as string,
      });
      res.writeHead(statuses[Math.min(got.length - 1, statuses.length - 1)]!).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, got, server };
}

function alertFor(tenant: string, threshold: number): AlertEvent {
  const alertId = `alert.${tenant}.daily.2026-11-30.${threshold * 1000}`;
  return makeEvent(
    'budget.threshold_crossed',
    { requestId: alertId, tenant, service: 'ledger', at: Date.now(), reason: 'test' },
    {
      budget: 'daily',
      budgetKey: `${tenant}.daily`,
      scope: 'tenant',
      window: 'daily',
      windowId: '2026-11-30',
      resetsAt: Date.now() + 3_600_000,
      threshold,
      limitUsd: 1,
      spentUsd: String(threshold),
      action: 'refuse',
    },
  );
}

describe('ledger-alerts: webhook delivery', () => {
  let env: TestBus;
  let deliveries: Consumption;
  let steady: Awaited<ReturnType<typeof receiver>>;
  let flaky: Awaited<ReturnType<typeof receiver>>;
  let seen: ReturnType<typeof collectEvents>;

  beforeAll(async () => {
    steady = await receiver([204]);
    flaky = await receiver([500, 503, 200]);
    const deadUrl = `http://127.0.0.1:${await freePort()}/hook`;
    env = await startTestBus(
      {
        ...minimalConfig([{ id: 't1' }, { id: 't2' }]),
        alerts: {
          webhooks: [
            { id: 'steady', url: steady.url, secretEnv: 'STEADY_SECRET', tenants: ['t1'] },
            { id: 'flaky', url: flaky.url, secretEnv: 'FLAKY_SECRET', tenants: ['t1'] },
            { id: 'dead', url: deadUrl, secretEnv: 'DEAD_SECRET', tenants: ['t2'] },
            { id: 'unsigned', url: steady.url, secretEnv: 'NOT_SET_ANYWHERE', tenants: ['t2'] },
          ],
          retry: { initialDelayMs: 50, maxDelayMs: 200, giveUpAfterMs: 1000, timeoutMs: 1000 },
        },
      },
      { name: 'ledger-alerts' },
    );
    seen = collectEvents(env.bus);
    deliveries = await consumeEvents(env.bus, {
      consumer: Consumers.ledgerAlerts,
      concurrency: 4,
      log: env.log,
      handler: alertDeliveryHandler({ config: env.control.config, kv: env.buckets.budgets, env: SECRETS, log: env.log }),
    });
  });
  afterAll(async () => {
    seen?.stop();
    await deliveries?.stop();
    await env?.stop();
    steady?.server.close();
    flaky?.server.close();
  });

  const attempts = (alertId: string) =>
    seen
      .of('alert.delivery_attempted')
      .filter((e) => e.requestId === alertId)
      .map((e: SluiceEvent<'alert.delivery_attempted'>) => e.data);

  it('POSTs a signed alert to each webhook, retries the one that fails until it answers 2xx, and never POSTs the other again', async () => {
    const alert = alertFor('t1', 0.5);
    await publishEvent(env.bus.js, alert);
    await eventually(() => flaky.got.length === 3, 10_000);
    await eventually(() => attempts(alert.requestId).length === 4);

    const body = JSON.stringify(alert);
    expect(steady.got).toHaveLength(1);
    for (const [r, secret] of [[steady.got[0]!, SECRETS.STEADY_SECRET], ...flaky.got.map((g) => [g, SECRETS.FLAKY_SECRET] as const)] as const) {
      expect(r.body).toBe(body);
      expect(r.eventId).toBe(alert.id);
      expect(verifySignature(secret, r.signature, r.body, 60)).toBe(true);
      expect(verifySignature('whsec_wrong', r.signature, r.body, 60)).toBe(false);
    }
    const byWebhook = (w: string) => attempts(alert.requestId).filter((a) => a.webhook === w);
    expect(byWebhook('steady').map((a) => [a.attempt, a.ok, a.status])).toEqual([[1, true, 204]]);
    expect(byWebhook('flaky').map((a) => [a.attempt, a.ok, a.status, a.retryInMs])).toEqual([
      [1, false, 500, 50],
      [2, false, 503, 100],
      [3, true, 200, undefined],
    ]);
    // acknowledged by both: the alert is acked, nothing pending
    await eventually(async () => {
      const info = await env.bus.jsm.consumers.info(Topology.stream.name, Consumers.ledgerAlerts.durable);
      return info.num_ack_pending === 0 && info.num_pending === 0;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(steady.got).toHaveLength(1);
    expect(flaky.got).toHaveLength(3);
  });

  it('gives up after giveUpAfterMs on a webhook that never answers, and never sends an unsigned alert', async () => {
    const before = steady.got.length;
    const alert = alertFor('t2', 0.9);
    await publishEvent(env.bus.js, alert);
    const last = await eventually(() => {
      const dead = attempts(alert.requestId).filter((a) => a.webhook === 'dead');
      const final = dead.at(-1);
      return final !== undefined && final.retryInMs === undefined && dead;
    }, 10_000);
    expect(last.length).toBeGreaterThan(2);
    expect(last.every((a) => !a.ok && /ECONNREFUSED|fetch failed/.test(a.error ?? ''))).toBe(true);
    // the webhook whose secret is missing failed every time without a request being made
    const unsigned = attempts(alert.requestId).filter((a) => a.webhook === 'unsigned');
    expect(unsigned.length).toBe(last.length);
    expect(unsigned.every((a) => a.error === 'signing secret NOT_SET_ANYWHERE is not set')).toBe(true);
    expect(steady.got.length).toBe(before);
    await eventually(async () => (await env.bus.jsm.consumers.info(Topology.stream.name, Consumers.ledgerAlerts.durable)).num_ack_pending === 0);
  });
});
