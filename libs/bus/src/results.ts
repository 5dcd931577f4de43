import { headers as natsHeaders } from '@nats-io/transport-node';
import { Headers, parseReply, Subjects, Topology, type ChatAccepted, type ChatReply } from '@sluice/contracts';
import type { Bus } from './connect.js';

/**
 * The latest message on a request's result subject (`sluice.results.<requestId>` in
 * SLUICE_RESULTS): its answer (`ChatResult` or `ChatErrorReply`), or the `held` notice while it
 * waits. Undefined when there is none for `tenant`: never stored, past the stream's max age, or
 * another tenant's (the same answer as unknown, so an id tells nothing about other tenants).
 * One request to the stream's leader (STREAM.MSG.GET, last by subject).
 *
 * @example
 * const reply = await readResult(bus, 'acme', 'req_abc...');
 * if (reply && isAccepted(reply)) ... // still held
 */
export async function readResult(bus: Pick<Bus, 'jsm'>, tenant: string, requestId: string): Promise<ChatReply | undefined> {
  const stored = await bus.jsm.streams.getMessage(Topology.results.name, { last_by_subj: Subjects.result(requestId) }).catch((e: unknown) => {
    // the server answers "no message found" as an error: not stored (or expired)
    if (e instanceof Error && /no message found|message not found/i.test(e.message)) return null;
    throw e;
  });
  if (!stored || stored.header.get(Headers.resultTenant) !== tenant) return undefined;
  return parseReply(stored.data);
}

/**
 * Stores a request's `queued` notice on its result subject and resolves on the stream's ack:
 * called before the request is published, so its answer (which replaces the notice) can never be
 * stored first and then overwritten by it.
 *
 * @example
 * await storeNotice(bus, 'acme', { requestId, status: 'queued', resultSubject: Subjects.result(requestId), at: Date.now() });
 */
export async function storeNotice(bus: Pick<Bus, 'js'>, tenant: string, notice: ChatAccepted): Promise<void> {
  const hdrs = natsHeaders();
  hdrs.set(Headers.resultTenant, tenant);
  await bus.js.publish(Subjects.result(notice.requestId), JSON.stringify(notice), { headers: hdrs });
}
