import { Subjects, type ChatAccepted, type SluiceConfig } from '@sluice/contracts';
import { RequestRejected } from './rejection.js';

/**
 * Whether a request asked to be answered later (`x-sluice-async` over HTTP, `sluice-async` over
 * NATS): `true` or `false`, any case; absent is false. An async request is answered whole, so it
 * may not stream.
 *
 * @throws RequestRejected invalid_request naming the header for any other value, or `stream`
 * when it also asks to stream.
 * @example
 * asyncAsked(header(headers, 'x-sluice-async'), 'x-sluice-async', request.stream) // true for "TRUE"
 */
export function asyncAsked(value: string | undefined, param: string, stream: boolean): boolean {
  if (value === undefined) return false;
  const v = value.trim().toLowerCase();
  if (v !== 'true' && v !== 'false')
    throw new RequestRejected('invalid_request', `${param} must be "true" or "false", not ${JSON.stringify(value.slice(0, 40))}.`, param);
  if (v === 'true' && stream)
    throw new RequestRejected('invalid_request', 'An async request is answered whole: leave out `stream` or set it to false.', 'stream');
  return v === 'true';
}

/** The `queued` notice of an async request: stored on its result subject before it is published, and the client's answer now. */
export function queuedNotice(requestId: string, at: number): ChatAccepted {
  return { requestId, status: 'queued', resultSubject: Subjects.result(requestId), at };
}

/**
 * The webhook an async request's answer is POSTed to (`x-sluice-webhook` over HTTP,
 * `sluice-webhook` over NATS): the id of one of `alerts.webhooks` that takes this tenant's, so a
 * request can only name a target (and signing secret) the operator configured. A request that
 * names none takes its virtual key's (`keyWebhook`), if any; undefined otherwise.
 *
 * @throws RequestRejected invalid_request naming the header: without `async`, or an id that is
 * not a webhook of this tenant.
 */
export function webhookAsked(
  value: string | undefined,
  param: string,
  later: boolean,
  tenant: string,
  config: SluiceConfig,
  keyWebhook?: string,
): string | undefined {
  // the key's own (the admin API checked it; a config change since may have removed it)
  if (value === undefined) return later && keyWebhook !== undefined && knownWebhook(config, tenant, keyWebhook) ? keyWebhook : undefined;
  const id = value.trim();
  if (!later) throw new RequestRejected('invalid_request', `${param} is for async requests: send it with the async header set to true.`, param);
  if (!knownWebhook(config, tenant, id))
    throw new RequestRejected('invalid_request', `${param} names no webhook configured for this tenant (alerts.webhooks ids).`, param);
  return id;
}

function knownWebhook(config: SluiceConfig, tenant: string, id: string): boolean {
  return config.alerts.webhooks.some((w) => w.id === id && (w.tenants === undefined || w.tenants.includes(tenant)));
}
