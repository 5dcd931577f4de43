import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import { Subjects, type AnyEvent, type SluiceEvent, type EventType } from '@sluice/contracts';

const encoder = new TextEncoder();

export interface PublishOptions {
  /** W3C trace context to carry to the next hop. */
  traceparent?: string;
  tracestate?: string;
  /** Attempts before giving up (each with the same msg id, so a retry never doubles the event). */
  attempts?: number;
}

/**
 * Publishes an event and waits for the stream's ack. The event id is the Nats-Msg-Id, so a
 * repeat within the duplicate window is dropped by the server.
 */
export async function publishEvent(js: JetStreamClient, event: SluiceEvent<EventType> | AnyEvent, opts: PublishOptions = {}): Promise<PubAck> {
  let hdrs: MsgHdrs | undefined;
  if (opts.traceparent) {
    hdrs = natsHeaders();
    hdrs.set('traceparent', opts.traceparent);
    if (opts.tracestate) hdrs.set('tracestate', opts.tracestate);
  }
  const subject = Subjects.event(event.type, event.tenant);
  const data = encoder.encode(JSON.stringify(event));
  const attempts = opts.attempts ?? 5;
  for (let i = 1; ; i++) {
    try {
      return await js.publish(subject, data, { msgID: event.id, ...(hdrs ? { headers: hdrs } : {}) });
    } catch (e) {
      if (i >= attempts) throw e;
      await new Promise((r) => setTimeout(r, Math.min(2000, 50 * 2 ** i)));
    }
  }
}
