import { AckPolicy, DeliverPolicy, type JsMsg } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import { publishEvent, type Bus } from '@sluice/bus';
import {
  Headers,
  isAccepted,
  isChunk,
  isError,
  makeEvent,
  parseReply,
  ServiceName,
  Subjects,
  Topology,
  type ChatReply,
  type SluiceConfig,
} from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import { post } from './deliver.js';
import { retryDelayMs } from './webhooks.js';

/** The durable on SLUICE_RESULTS that POSTs async answers to their webhooks. */
const DURABLE = 'ledger-result-webhooks';
/** POSTs in flight at once (the durable's max_ack_pending). */
const IN_FLIGHT = 32;

export interface ResultWebhookDeps {
  bus: Bus;
  config: () => SluiceConfig;
  /** Where webhook secrets are read from (`secretEnv`). */
  env: NodeJS.ProcessEnv;
  log: Logger;
}

/**
 * What a webhook receives for an async request's answer (JSON): its id, `completed` with the
 * OpenAI object whole in `response`, or `failed` with the error the request would have answered.
 */
function resultPayload(requestId: string, reply: ChatReply): Record<string, unknown> {
  if (isError(reply)) return { id: requestId, object: 'sluice.request.result', status: 'failed', error: reply.error };
  if (isAccepted(reply) || isChunk(reply)) throw new Error(`not an answer: ${JSON.stringify(reply).slice(0, 100)}`);
  return { id: requestId, object: 'sluice.request.result', status: 'completed', model: reply.model, response: reply.body, usage: reply.usage };
}

/**
 * Async answers to their webhooks, with the budget alerts' delivery: the configured webhook (an
 * `alerts.webhooks` id the request named, `Sluice-Webhook` on its stored answer), signed with its
 * secret (`x-sluice-signature`, `x-sluice-event-id: <requestId>:result`), retried with
 * `alerts.retry`'s backoff by nak delay until a 2xx or `giveUpAfterMs` from the answer. Each POST
 * is a `result.delivery_attempted` event on the request's timeline. A durable on SLUICE_RESULTS
 * (every message there is an answer, a notice or a batch line's): messages without a webhook are
 * acked at once. A crash between a 2xx and the ack POSTs again: receivers deduplicate on the id.
 *
 * @example
 * const hooks = await deliverResultWebhooks({ bus, config: control.config, env, log });
 */
export async function deliverResultWebhooks(deps: ResultWebhookDeps): Promise<{ stop(): Promise<void> }> {
  const { bus } = deps;
  const stream = Topology.results.name;
  try {
    await bus.jsm.consumers.info(stream, DURABLE);
  } catch {
    await bus.jsm.consumers
      .add(stream, {
        durable_name: DURABLE,
        filter_subject: Subjects.resultsAll,
        ack_policy: AckPolicy.Explicit,
        // an answer stored before this durable first existed still goes out
        deliver_policy: DeliverPolicy.All,
        ack_wait: nanos(deps.config().alerts.retry.timeoutMs + 5_000),
        max_ack_pending: IN_FLIGHT,
      })
      .catch(async (e: unknown) => {
        // another ledger replica made it first
        await bus.jsm.consumers.info(stream, DURABLE).catch(() => {
          throw e;
        });
      });
  }
  const consumer = await bus.js.consumers.get(stream, DURABLE);
  const messages = await consumer.consume({ max_messages: IN_FLIGHT, callback: (m) => void deliver(deps, m) });
  return {
    async stop() {
      await messages.close();
    },
  };
}

async function deliver(deps: ResultWebhookDeps, m: JsMsg): Promise<void> {
  const webhookId = m.headers?.get(Headers.resultWebhook);
  const tenant = m.headers?.get(Headers.resultTenant);
  if (!webhookId || !tenant) return m.ack();
  let reply: ChatReply;
  try {
    reply = parseReply(m.data);
  } catch (err) {
    deps.log.warn({ err, subject: m.subject }, 'a stored result is not a reply; not delivered');
    return m.term();
  }
  // the queued or held notice: the answer replaces it and is delivered then
  if (isAccepted(reply) || isChunk(reply)) return m.ack();
  const requestId = m.subject.slice(Subjects.result('').length);
  const { webhooks, retry } = deps.config().alerts;
  const attempt = m.info.deliveryCount;
  const webhook = webhooks.find((w) => w.id === webhookId && (w.tenants === undefined || w.tenants.includes(tenant)));
  const result = webhook
    ? await post(webhook, `${requestId}:result`, JSON.stringify(resultPayload(requestId, reply)), deps.env[webhook.secretEnv], retry.timeoutMs)
    : { webhook: webhookId, ok: false, error: `webhook ${webhookId} is no longer configured for tenant ${tenant}`, latencyMs: 0 };
  const now = Date.now();
  const answeredAt = m.info.timestampNanos / 1e6;
  const delay = retryDelayMs(retry, attempt);
  const retrying = !result.ok && webhook !== undefined && now + delay - answeredAt <= retry.giveUpAfterMs;
  const event = makeEvent(
    'result.delivery_attempted',
    {
      requestId,
      tenant,
      service: ServiceName.Ledger,
      at: now,
      suffix: attempt,
      reason: result.ok
        ? `delivered to ${webhookId}`
        : `${webhookId}: ${result.error ?? `status ${result.status}`}${retrying ? `; again in ${delay} ms` : '; given up'}`,
    },
    {
      webhook: webhookId,
      attempt,
      ok: result.ok,
      ...(result.status !== undefined ? { status: result.status } : {}),
      ...(result.error !== undefined ? { error: result.error } : {}),
      latencyMs: result.latencyMs,
      ...(retrying ? { retryInMs: delay } : {}),
    },
  );
  try {
    await publishEvent(deps.bus.js, event);
  } catch (err) {
    // the attempt is not on record: try again soon rather than lose the answer or its record
    deps.log.warn({ err, requestId }, 'could not publish result.delivery_attempted; redelivering');
    return m.nak(1_000);
  }
  if (result.ok) return m.ack();
  if (retrying) return m.nak(delay);
  deps.log.warn({ requestId, webhook: webhookId, attempts: attempt }, 'gave up delivering an async answer');
  m.term();
}
