import { batchResultSubject, ENDPOINT_OF_PATH, type BatchRecord, type ChatErrorReply, type RequestContext, type VirtualKey } from '@sluice/contracts';
import type { BatchTask } from './batch-input.js';
import { lineRequestId } from './batch-output.js';
import type { IngressDeps } from './deps.js';
import { rejectedEvent, requestedEvent } from './events.js';
import { checkFits } from './fits.js';
import { continueTrace } from './ids.js';
import { requestKey, type KeyIndex } from './keys.js';
import { RequestRejected } from './rejection.js';
import { validateRequest } from './validate.js';

/** What submitting a line needs of ingress, and where a refused line's answer is stored. */
export interface SubmitDeps extends Pick<IngressDeps, 'config' | 'keys' | 'publish' | 'maxPayload' | 'now'> {
  /** Stores an answer on a result subject (SLUICE_RESULTS, acked) for `tenant`. */
  storeResult(tenant: string, subject: string, reply: ChatErrorReply): Promise<void>;
}

/**
 * Puts one line of a batch into the pipeline exactly as a request at the door: checked by
 * `validateRequest` for the batch's tenant (and virtual key), published as `chat.requested` in
 * the `batch` lane with `ctx.batch`, its deadline the batch's expiry and its answer going to the
 * line's result subject. A line ingress refuses (a bad body, an unknown model) is published as
 * `chat.rejected` and its error stored on that subject itself, as the terminal stage would.
 * The request id comes from the batch, the `custom_id` and the attempt (`lineRequestId`), so
 * submitting a line again after a restart publishes duplicates the streams drop.
 *
 * @throws what publishing throws (NATS down): the runner tries again on its next round.
 */
export async function submitLine(d: SubmitDeps, record: BatchRecord, task: BatchTask, line: number, attempt = 0): Promise<void> {
  const now = d.now();
  const requestId = lineRequestId(record.id, task.customId, attempt);
  const replyTo = batchResultSubject(record.id, line);
  const traceparent = continueTrace(undefined);
  const config = d.config();
  try {
    const tenant = config.tenants.find((t) => t.id === record.tenant);
    if (!tenant) throw new RequestRejected('invalid_api_key', `The tenant ${record.tenant} of this batch is no longer configured.`);
    const key = record.keyId === undefined ? undefined : usableKey(d.keys(), record.keyId, now);
    const { request, body, tokenBudget } = await validateRequest(ENDPOINT_OF_PATH[record.endpoint], task.body, {}, tenant, config, key);
    request.priority = 'batch';
    const ctx: RequestContext = {
      request,
      replyTo,
      frontDoor: 'http',
      receivedAt: now,
      // a line may wait in its lane as long as its batch may run
      deadline: record.expires_at * 1000,
      batch: { id: record.id, customId: task.customId },
    };
    if (key) ctx.key = requestKey(key);
    const event = requestedEvent(requestId, tenant.id, ctx, body, tokenBudget, `lane batch (batch ${record.id}, line ${line + 1})`);
    checkFits(event, undefined, d.maxPayload());
    await d.publish(event, traceparent);
  } catch (e) {
    if (!(e instanceof RequestRejected)) throw e;
    await d.publish(rejectedEvent(requestId, e, { tenant: record.tenant, receivedAt: now, replyTo, ...e.known }, now), traceparent);
    const param = e.param !== undefined ? { param: e.param } : {};
    await d.storeResult(record.tenant, replyTo, { requestId, error: { code: e.code, message: e.message, status: e.status, ...param } });
  }
}

/** The batch's virtual key if it may still be used: a key revoked or expired since refuses the lines left. */
function usableKey(keys: KeyIndex, id: string, now: number): VirtualKey {
  const key = keys.byId.get(id);
  if (!key) throw new RequestRejected('key_expired', `The API key ${id} this batch was created with no longer exists.`);
  if (key.revokedAt !== undefined) throw new RequestRejected('key_expired', `The API key ${id} this batch was created with was revoked.`);
  if (key.expiresAt !== undefined && now >= key.expiresAt) throw new RequestRejected('key_expired', `The API key ${id} this batch was created with expired.`);
  return key;
}
