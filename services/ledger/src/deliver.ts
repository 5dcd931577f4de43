import type { KV } from '@nats-io/kv';
import { encodeJson, getJson, type Decided, type Delivery } from '@sluice/bus';
import { BudgetKeys, signWebhook, WebhookHeaders, type SluiceConfig, type SluiceEvent, type Webhook } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import { decideDelivery, webhooksFor, type AlertEvent, type PostResult } from './webhooks.js';

export interface DeliveryDeps {
  config: () => SluiceConfig;
  /** `sluice_budgets`: a marker per webhook that acknowledged an alert. */
  kv: KV;
  /** Where webhook secrets are read from (`secretEnv`). */
  env: NodeJS.ProcessEnv;
  log: Logger;
}

/**
 * The `ledger-alerts` handler: POSTs an alert to each webhook of its tenant that has not
 * acknowledged it yet, in parallel, and returns the attempts (webhooks.ts decides the retry).
 * A webhook that answers 2xx gets a marker (`BudgetKeys.delivered`) before the attempt is
 * returned, so a redelivery for another webhook's sake never POSTs it the alert again.
 */
export function alertDeliveryHandler(deps: DeliveryDeps) {
  return async (alert: AlertEvent, delivery: Delivery): Promise<Decided<SluiceEvent<'alert.delivery_attempted'>>> => {
    const { webhooks, retry } = deps.config().alerts;
    const targets = webhooksFor(webhooks, alert.tenant);
    const acknowledged = await Promise.all(targets.map(async (w) => (await getJson(deps.kv, BudgetKeys.delivered(alert.requestId, w.id))) !== undefined));
    const due = targets.filter((_, i) => !acknowledged[i]);
    const body = JSON.stringify(alert);
    const results = await Promise.all(due.map((w) => post(w, alert.id, body, deps.env[w.secretEnv], retry.timeoutMs)));
    await Promise.all(
      results.filter((r) => r.ok).map((r) => deps.kv.put(BudgetKeys.delivered(alert.requestId, r.webhook), encodeJson({ eventId: alert.id, at: Date.now() }))),
    );
    for (const r of results)
      if (!r.ok) deps.log.warn({ alertId: alert.requestId, webhook: r.webhook, status: r.status, error: r.error }, 'webhook delivery failed');
    return decideDelivery(alert, delivery.deliveryCount, results, retry, Date.now());
  };
}

/** One signed POST; never throws (a network error or a timeout is a failed result). */
export async function post(w: Webhook, eventId: string, body: string, secret: string | undefined, timeoutMs: number): Promise<PostResult> {
  const started = performance.now();
  const latencyMs = () => Math.round((performance.now() - started) * 10) / 10;
  // without its secret a webhook cannot be signed, and an unsigned alert is worthless to a receiver
  if (!secret) return { webhook: w.id, ok: false, error: `signing secret ${w.secretEnv} is not set`, latencyMs: 0 };
  try {
    const res = await fetch(w.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'user-agent': 'sluice-alerts',
        [WebhookHeaders.signature]: signWebhook(secret, body, Date.now()),
        [WebhookHeaders.eventId]: eventId,
      },
      body,
      signal: AbortSignal.timeout(timeoutMs),
      redirect: 'manual',
    });
    // the answer's body is not read, but must be consumed to free the connection
    await res.body?.cancel().catch(() => undefined);
    return { webhook: w.id, ok: res.status >= 200 && res.status < 300, status: res.status, latencyMs: latencyMs() };
  } catch (e) {
    const err = e as Error;
    const error = err.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : ((err.cause as Error | undefined)?.message ?? err.message);
    return { webhook: w.id, ok: false, error: error.slice(0, 500), latencyMs: latencyMs() };
  }
}
