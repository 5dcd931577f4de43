import { headers as natsHeaders } from '@nats-io/transport-node';
import { Headers, parseReply, Subjects, Topology, type ChatReply } from '@sluice/contracts';
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
 * Stores a reply on a result subject for `tenant`, as a terminal stage's reply is stored (the
 * tenant in a header), and resolves on the stream's ack: for what must be stored before anything
 * else happens (an async request's `queued` notice before the request goes, so its answer never
 * comes first and is then overwritten; a batch line ingress refused). `msgID` lets a repeat of
 * the same store be dropped by the stream.
 *
 * @example
 * await storeResult(bus, 'acme', Subjects.result(requestId), { requestId, status: 'queued', resultSubject: Subjects.result(requestId), at: Date.now() });
 */
export async function storeResult(bus: Pick<Bus, 'js'>, tenant: string, subject: string, reply: ChatReply, msgID?: string): Promise<void> {
  const hdrs = natsHeaders();
  hdrs.set(Headers.resultTenant, tenant);
  await bus.js.publish(subject, JSON.stringify(reply), { headers: hdrs, ...(msgID !== undefined ? { msgID } : {}) });
}

/**
 * A request's stored answer for `tenant`, waited for until `until` (epoch ms) when none is stored
 * yet: listens on its result subject (core NATS) before reading the stream, so an answer stored
 * between the two is not missed. A stored notice (`held`, `queued`) is returned as it is: it is
 * what the request answered so far. Undefined when nothing came for `tenant` by `until`.
 *
 * @example
 * const reply = await awaitResult(bus, 'acme', 'req_abc...', Date.now() + 30_000);
 */
export async function awaitResult(bus: Pick<Bus, 'jsm' | 'nc'>, tenant: string, requestId: string, until: number): Promise<ChatReply | undefined> {
  const sub = bus.nc.subscribe(Subjects.result(requestId));
  const timer = setTimeout(() => sub.unsubscribe(), Math.max(0, until - Date.now()));
  try {
    const stored = await readResult(bus, tenant, requestId);
    if (stored) return stored;
    for await (const msg of sub) {
      // another tenant's message on this subject is no answer for this one
      if (msg.headers?.get(Headers.resultTenant) === tenant) return parseReply(msg.data);
    }
    return undefined;
  } finally {
    clearTimeout(timer);
    sub.unsubscribe();
  }
}
