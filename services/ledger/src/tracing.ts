import type { JsMsg } from '@nats-io/jetstream';
import { Headers, Subjects } from '@sluice/contracts';
import { SpanAttributes, startBatchSpan, startConsumerSpan, type MessageFacts, type OpenSpan, type TraceHeaders } from '@sluice/telemetry';

const decoder = new TextDecoder();

/**
 * Runs one batch commit inside spans (only called with tracing on). A span has one parent, and a
 * batch holds events of many requests, so there are two kinds:
 * - `process batch`, a root span with a link to every event's producer: the transaction's pg
 *   queries are its children, and its duration is the commit's;
 * - `process <event type>` per event, the child of that event's producer span, so each request's
 *   trace ends at the ledger; it links to the batch span and lasts until the batch committed.
 * `commit` resolving false (stopped before committing) marks them all failed: the events come back.
 */
export async function traceCommit(durable: string, batch: JsMsg[], commit: () => Promise<boolean>): Promise<boolean> {
  const incoming = batch.map(traceHeadersOf);
  const batchSpan = startBatchSpan({ name: 'process batch', destination: Subjects.allEvents, consumerGroup: durable }, incoming);
  const spans: OpenSpan[] = [batchSpan, ...batch.map((m, i) => startConsumerSpan(() => eventFacts(m, durable), incoming[i], [batchSpan.headers]))];
  try {
    const committed = await batchSpan.run(commit);
    if (!committed) for (const s of spans) s.fail(new Error('stopped before the batch committed; it will be redelivered'));
    return committed;
  } catch (err) {
    for (const s of spans) s.fail(err);
    throw err;
  } finally {
    for (const s of spans) s.end();
  }
}

function traceHeadersOf(m: JsMsg): TraceHeaders {
  return { traceparent: m.headers?.get(Headers.traceparent) || undefined, tracestate: m.headers?.get(Headers.tracestate) || undefined };
}

/** The envelope fields a span names; a malformed event gets a span all the same (the projection counts it). */
function eventFacts(m: JsMsg, durable: string): MessageFacts {
  let e: { id?: unknown; type?: unknown; requestId?: unknown; tenant?: unknown } = {};
  try {
    e = (JSON.parse(decoder.decode(m.data)) as typeof e | null) ?? {};
  } catch {
    // counted as malformed by the projection
  }
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return {
    name: `process ${str(e.type) ?? 'event'}`,
    destination: m.subject,
    messageId: str(e.id),
    consumerGroup: durable,
    attributes: {
      [SpanAttributes.requestId]: str(e.requestId),
      [SpanAttributes.tenant]: str(e.tenant),
      [SpanAttributes.eventType]: str(e.type),
      [SpanAttributes.streamSeq]: m.seq,
      [SpanAttributes.deliveryCount]: m.info.deliveryCount,
    },
  };
}
