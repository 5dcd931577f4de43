import { errors, headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import { JetStreamApiError, JetStreamError } from '@nats-io/jetstream';
import { Headers, makeEvent, Subjects, SYSTEM_TENANT, TENANT_ID_PATTERN, Topology, UNKNOWN_TENANT, type AnyEvent, type ServiceName } from '@sluice/contracts';
import type { Bus } from './connect.js';
import { publishEvent } from './publish.js';
import { retryFor } from './retry.js';

/** Tries before a consumer parks an event whose handler keeps failing (transient faults excepted). */
export const DEFAULT_MAX_DELIVERIES = 5;

/** How long parking keeps retrying its two publishes before the input is redelivered instead. */
const PARK_RETRY_MS = 5_000;
const MAX_ERROR_CHARS = 500;

/** What a consumer knows of an event it gives up on. */
export interface ParkedInput {
  /** The durable that gives up; replay sends the event back to it alone. */
  durable: string;
  /** Its service, which signs the `event.parked` event. */
  service: ServiceName;
  /** The event's sequence in SLUICE_EVENTS. */
  seq: number;
  subject: string;
  data: Uint8Array;
  headers?: MsgHdrs | undefined;
  deliveries: number;
  error: unknown;
  /** The event, when it parsed; its request id and tenant label the `event.parked` event. */
  event?: AnyEvent | undefined;
  /** Distinguishes a second parking of the same event (a replay that failed again). */
  attempt?: string | undefined;
}

/**
 * Parks an event: a copy goes to the dead-letter stream (`sluice.dlq.parked.<durable>`, with
 * where it came from and why in headers), then `event.parked` goes to the event stream so the
 * request's timeline shows it. Both publishes carry deterministic msg ids, so a consumer that
 * crashes mid-way and parks again doubles nothing. Throws when NATS cannot take them: the
 * caller then redelivers instead, and nothing is lost.
 *
 * @example
 * await park(bus, { durable: 'router', service: 'router', seq: msg.seq, subject: msg.subject, data: msg.data, deliveries: 5, error });
 * msg.term();
 */
export async function park(bus: Bus, p: ParkedInput): Promise<void> {
  const error = oneLine(p.error);
  const attempt = p.attempt ? `:${p.attempt}` : '';
  const hdrs = natsHeaders();
  const traceparent = p.headers?.get(Headers.traceparent);
  if (traceparent) hdrs.set(Headers.traceparent, traceparent);
  hdrs.set(Headers.parkedDurable, p.durable);
  hdrs.set(Headers.parkedSeq, String(p.seq));
  hdrs.set(Headers.parkedSubject, p.subject);
  hdrs.set(Headers.parkedDeliveries, String(p.deliveries));
  hdrs.set(Headers.parkedError, error);
  await retryFor(PARK_RETRY_MS, () => bus.js.publish(Subjects.parked(p.durable), p.data, { msgID: `parked:${p.durable}:${p.seq}${attempt}`, headers: hdrs }));

  const e = p.event;
  const tenant = e && (TENANT_ID_PATTERN.test(e.tenant) || e.tenant === UNKNOWN_TENANT) ? e.tenant : SYSTEM_TENANT;
  const requestId = e?.requestId ?? '';
  const parked = makeEvent(
    'event.parked',
    {
      requestId,
      tenant,
      service: p.service,
      at: Date.now(),
      reason: `${p.durable} parked ${e?.type ?? 'an unreadable event'} (seq ${p.seq}) after ${p.deliveries} tries: ${error}`,
      suffix: `${p.durable}:${p.seq}${attempt}`,
    },
    {
      durable: p.durable,
      streamSeq: p.seq,
      subject: p.subject,
      ...(e ? { eventType: e.type } : {}),
      error,
      deliveries: p.deliveries,
    },
  );
  await publishEvent(bus.js, parked, { retryForMs: PARK_RETRY_MS, ...(traceparent ? { traceparent } : {}) });
}

/**
 * Thrown by a handler for a fault that passes and says nothing about the event (contention on a
 * shared key, as the limiter's budget counters): redelivered with backoff however often, never
 * parked, like a connection fault (`isTransient`). A request past its deadline then ends at the
 * stage that checks it.
 */
export class TransientFault extends Error {}

/**
 * Faults of the connection or the server, which say nothing about the event: a consumer keeps
 * retrying through them however often, and only other errors count towards parking.
 */
export function isTransient(err: unknown): boolean {
  if (
    err instanceof TransientFault ||
    err instanceof errors.ConnectionError ||
    err instanceof errors.ClosedConnectionError ||
    err instanceof errors.DrainingConnectionError ||
    err instanceof errors.TimeoutError ||
    err instanceof errors.NoRespondersError ||
    err instanceof errors.RequestError ||
    // pull and status faults of a consumer (the server restarting, a leader moving)
    err instanceof JetStreamError ||
    (err instanceof Error && err.name === 'JetStreamNotEnabled')
  ) {
    return true;
  }
  // a server error of JetStream's (503: no leader yet, the store not ready after a restart)
  if (err instanceof JetStreamApiError && err.status >= 500) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN'].includes(code);
}

// control characters would break a header; lone surrogates and NULs a database column
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]+/g;

/** An error as one printable line of at most 500 characters (it travels in a header and an event). */
export function oneLine(err: unknown): string {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  const clean = text.toWellFormed().replace(CONTROL_CHARACTERS, ' ').trim();
  return clean.length > MAX_ERROR_CHARS ? `${clean.slice(0, MAX_ERROR_CHARS - 1)}…` : clean;
}

/** A parked event as `listParked` reads it from the dead-letter stream. */
export interface ParkedEvent {
  /** Its sequence in SLUICE_DLQ (what `replayParked` takes). */
  dlqSeq: number;
  durable: string;
  /** Its sequence in SLUICE_EVENTS. */
  seq: number;
  subject: string;
  deliveries: number;
  error: string;
  parkedAt: Date;
  /** The event as it was sent. */
  data: Uint8Array;
}

/**
 * The events parked by one durable (or by every one), oldest first, read with an ephemeral
 * ordered consumer.
 *
 * @example
 * for (const p of await listParked(bus, 'ledger')) console.log(p.seq, p.error);
 */
export async function listParked(bus: Bus, durable?: string): Promise<ParkedEvent[]> {
  const stream = Topology.deadLetters.name;
  const filter = durable ? Subjects.parked(durable) : Subjects.parkedAll;
  const consumer = await bus.js.consumers.get(stream, { filter_subjects: filter });
  const out: ParkedEvent[] = [];
  let pending = (await consumer.info()).num_pending;
  while (pending > 0) {
    const m = await consumer.next({ expires: 2000 });
    if (!m) break;
    pending = m.info.pending;
    const h = m.headers;
    out.push({
      dlqSeq: m.seq,
      durable: h?.get(Headers.parkedDurable) ?? '',
      seq: Number(h?.get(Headers.parkedSeq) || 0),
      subject: h?.get(Headers.parkedSubject) ?? '',
      deliveries: Number(h?.get(Headers.parkedDeliveries) || 0),
      error: h?.get(Headers.parkedError) ?? '',
      parkedAt: new Date(m.info.timestampNanos / 1e6),
      data: m.data,
    });
  }
  await consumer.delete().catch(() => undefined);
  return out;
}

/**
 * Sends parked events back to the durable that parked them (`sluice.dlq.replay.<durable>`, which
 * that durable's consumers take like any event), then removes them from the parked list. A
 * replay that fails again is parked again. Returns the replayed events.
 *
 * @example
 * await replayParked(bus, 'ledger');            // everything the ledger parked
 * await replayParked(bus, 'router', [1042]);    // one dead letter, by its SLUICE_DLQ sequence
 */
export async function replayParked(bus: Bus, durable: string, dlqSeqs?: number[]): Promise<ParkedEvent[]> {
  const chosen = (await listParked(bus, durable)).filter((p) => !dlqSeqs || dlqSeqs.includes(p.dlqSeq));
  for (const p of chosen) {
    const hdrs = natsHeaders();
    hdrs.set(Headers.parkedDurable, p.durable);
    hdrs.set(Headers.parkedSeq, String(p.seq));
    hdrs.set(Headers.parkedSubject, p.subject);
    hdrs.set(Headers.parkedDeliveries, String(p.deliveries));
    hdrs.set(Headers.parkedError, p.error);
    await bus.js.publish(Subjects.replay(durable), p.data, { msgID: `replay:${p.dlqSeq}`, headers: hdrs });
    await bus.jsm.streams.deleteMessage(Topology.deadLetters.name, p.dlqSeq, false);
  }
  return chosen;
}
