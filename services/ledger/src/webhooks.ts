import { decided, type Decided } from '@sluice/bus';
import { makeEvent, type Alerts, type SluiceEvent, type Webhook } from '@sluice/contracts';

// Webhook delivery of budget alerts, decided without I/O: which webhooks an alert goes to, when
// a failed delivery is tried again, and the attempt events. deliver.ts POSTs.

export type AlertEvent = SluiceEvent<'budget.threshold_crossed'>;
type RetryPolicy = Alerts['retry'];

/** What one POST to one webhook came to. */
export interface PostResult {
  webhook: string;
  /** A 2xx answer: the webhook acknowledged the alert. */
  ok: boolean;
  status?: number;
  error?: string;
  latencyMs: number;
}

/** The configured webhooks that take a tenant's alerts (no `tenants`: every tenant's). */
export function webhooksFor(webhooks: Webhook[], tenant: string): Webhook[] {
  return webhooks.filter((w) => w.tenants === undefined || w.tenants.includes(tenant));
}

/** The wait before attempt `attempt + 1`: `initialDelayMs` doubling per attempt, at most `maxDelayMs`. */
export function retryDelayMs(retry: RetryPolicy, attempt: number): number {
  return Math.min(retry.maxDelayMs, retry.initialDelayMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30));
}

/**
 * The decision after attempt `attempt` of an alert: one `alert.delivery_attempted` per webhook
 * POSTed (id from the alert, the webhook and the attempt, so a redelivered decision is
 * published once), and, when one failed, the alert back after the backoff: unless the next try
 * would come later than `giveUpAfterMs` after the alert, when it is given up (its last attempt
 * says no `retryInMs`). Webhooks that acknowledged are not in `results` on later attempts.
 *
 * @example
 * decideDelivery(alert, 1, [{ webhook: 'ops', ok: false, status: 500, latencyMs: 3 }], config.alerts.retry, Date.now()).redeliverInMs // 1000
 */
export function decideDelivery(
  alert: AlertEvent,
  attempt: number,
  results: PostResult[],
  retry: RetryPolicy,
  now: number,
): Decided<SluiceEvent<'alert.delivery_attempted'>> {
  const failed = results.some((r) => !r.ok);
  const delay = retryDelayMs(retry, attempt);
  const retrying = failed && now + delay - alert.at <= retry.giveUpAfterMs;
  const events = results.map((r) =>
    makeEvent(
      'alert.delivery_attempted',
      {
        requestId: alert.requestId,
        tenant: alert.tenant,
        service: 'ledger',
        at: now,
        reason: r.ok ? `webhook ${r.webhook} acknowledged` : `webhook ${r.webhook} failed: ${r.error ?? `HTTP ${r.status}`}${retrying ? '' : '; gave up'}`,
        suffix: `${r.webhook}:${attempt}`,
      },
      {
        alertId: alert.requestId,
        webhook: r.webhook,
        attempt,
        ok: r.ok,
        ...(r.status !== undefined ? { status: r.status } : {}),
        ...(r.error !== undefined ? { error: r.error } : {}),
        latencyMs: r.latencyMs,
        ...(!r.ok && retrying ? { retryInMs: delay } : {}),
      },
    ),
  );
  return retrying ? { ...decided(events), redeliverInMs: delay } : decided(events);
}
