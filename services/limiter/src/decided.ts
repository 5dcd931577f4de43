import { DeliverPolicy, type JetStreamClient } from '@nats-io/jetstream';
import { TransientFault } from '@sluice/bus';
import { EventType, parseEvent, ServiceName, Subjects, Topology, type AnyEvent, type SluiceEvent } from '@sluice/contracts';

type Decision = SluiceEvent<'chat.admitted'> | SluiceEvent<'chat.throttled'> | SluiceEvent<'chat.rejected'>;

/** Finds the decision already published for a redelivered chat.requested, if there is one. */
export type FindDecision = (requested: SluiceEvent<'chat.requested'>, seq: number) => Promise<Decision | undefined>;

/**
 * Reads the stream after the request (its sequence) for a chat.admitted, chat.throttled or (a
 * spent budget) chat.rejected of the same request: the tenant's `chat.*` events only, with an
 * ordered consumer, stopping at the first match or the end of the stream. Only redeliveries ask, so the scan (the tenant's traffic since
 * the request, seconds of it) is paid only after a crash between the decision and the ack.
 */
export function streamDecisions(js: JetStreamClient, timeoutMs = SCAN_TIMEOUT_MS): FindDecision {
  return async (requested, seq) => {
    const consumer = await js.consumers.get(Topology.stream.name, {
      filter_subjects: Subjects.familyOf('chat', requested.tenant),
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: seq + 1,
    });
    if ((await consumer.info(true)).num_pending === 0) return undefined;
    const messages = await consumer.consume();
    // a scan whose messages stop coming (its node killed mid-scan) would hold the request for
    // good, its heartbeat keeping it from redelivery: it is closed and the delivery tried again
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      void messages.close();
    }, timeoutMs);
    try {
      for await (const m of messages) {
        const e = parseEvent(m.data);
        if (e.requestId === requested.requestId && isDecision(e)) return e;
        if (m.info.pending === 0) return undefined;
      }
    } finally {
      clearTimeout(timer);
      await messages.close();
    }
    if (timedOut) throw new TransientFault(`the scan for ${requested.requestId}'s decision took over ${timeoutMs} ms`);
    return undefined;
  };
}

/** How long a redelivery's scan for its decision may take (the tenant's events since the request: seconds of traffic). */
const SCAN_TIMEOUT_MS = 5_000;

/** The limiter's own decisions (ingress also rejects, but before the request is in the stream). */
function isDecision(e: AnyEvent): e is Decision {
  return e.type === EventType.ChatAdmitted || e.type === EventType.ChatThrottled || (e.type === EventType.ChatRejected && e.service === ServiceName.Limiter);
}
