import { DeliverPolicy } from '@nats-io/jetstream';
import type { Bus } from '@sluice/bus';
import { parseEvent, Subjects, Topology, type AnyEvent } from '@sluice/contracts';

/**
 * How long after the window's end events are still read: a request received before `to` ends
 * (completes, fails, is released from hold) after it. Ten minutes covers the default deadline of
 * 60 s many times over; a request still without an end by then counts as pending.
 */
const SETTLE_MS = 10 * 60_000;

/**
 * How long before the window's start events are read too: the state requests of the window met
 * (the degrade level, circuits, canary rollbacks, and the upstreams' rate limits, which the
 * adaptive global limit forgets after `limits.adaptive.forgetAfterMs`, 5 minutes by default).
 * Requests received before the window are read but not replayed.
 */
const LOOKBACK_MS = 10 * 60_000;

/** What reading the stream found: how many events, and the ones it could not read. */
export interface Read {
  events: number;
  /** Messages that are not a valid event (skipped, as the ledger parks them). */
  unreadable: number;
  /** Stream sequences read, first and last (0 when none). */
  firstSeq: number;
  lastSeq: number;
}

/**
 * The events of SLUICE_EVENTS stored from `from` - LOOKBACK_MS to `to` + SETTLE_MS (or the stream's end, as it
 * was when the read began), in stream order, with an ephemeral ordered consumer: nothing is acked,
 * no durable is left behind, the services' consumers are not touched. Each event goes to `onEvent`
 * as it is read (nothing is held here); a `chat.requested` without its body (null): the replay
 * decides on the request's facts, never on the conversation.
 *
 * @example
 * const rec = new RecordingBuilder();
 * await readWindow(bus, Date.parse('2026-11-30'), Date.parse('2026-12-01'), (e) => rec.add(e));
 */
export async function readWindow(bus: Bus, from: number, to: number, onEvent: (e: AnyEvent) => void): Promise<Read> {
  const stream = Topology.stream.name;
  const info = await bus.jsm.streams.info(stream);
  const read: Read = { events: 0, unreadable: 0, firstSeq: 0, lastSeq: 0 };
  const until = to + SETTLE_MS;
  // an ordered consumer started past the last message would wait for the next one forever
  const since = from - LOOKBACK_MS;
  if (info.state.messages === 0 || Date.parse(info.state.last_ts) < since) return read;
  const lastSeq = info.state.last_seq;
  const consumer = await bus.js.consumers.get(stream, {
    filter_subjects: Subjects.allEvents,
    deliver_policy: DeliverPolicy.StartTime,
    opt_start_time: new Date(since).toISOString(),
  });
  // one pull request per batch, not per message: a week of events is read at the stream's pace
  const messages = await consumer.consume({ max_messages: 1000 });
  try {
    for await (const m of messages) {
      if (m.info.timestampNanos / 1e6 >= until) break;
      read.firstSeq ||= m.seq;
      read.lastSeq = m.seq;
      const e = eventOf(m.data);
      if (e) {
        read.events++;
        onEvent(e);
      } else read.unreadable++;
      if (m.seq >= lastSeq || m.info.pending === 0) break;
    }
  } finally {
    await messages.close();
    await consumer.delete().catch(() => undefined);
  }
  return read;
}

/** The event a message holds, a `chat.requested` without its body; undefined when it is not a valid event. */
function eventOf(data: Uint8Array): AnyEvent | undefined {
  let e: AnyEvent;
  try {
    e = parseEvent(data);
  } catch {
    return undefined;
  }
  // the conversation is the bulk of a chat.requested and no decision the replay makes reads it
  return e.type === 'chat.requested' ? { ...e, data: { ...e.data, body: null } } : e;
}
