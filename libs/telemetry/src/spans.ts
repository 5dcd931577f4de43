import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type AttributeValue,
  type Context,
  type Link,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { MessagingOperation, MessagingSystem, SpanAttributes, type SpanAttribute } from './attributes.js';
import { tracingOn } from './state.js';
import { getRPCMetadata } from '@opentelemetry/core';

/** W3C trace context as it travels in message headers. */
export interface TraceHeaders {
  traceparent?: string | undefined;
  tracestate?: string | undefined;
}

/** What a messaging span says about its message. */
export interface MessageFacts {
  /** Span name, low cardinality: `publish chat.requested`, not a subject with a tenant in it. */
  name: string;
  /** The subject. */
  destination: string;
  messageId?: string;
  /** The destination is an inbox made for one request. */
  temporaryDestination?: boolean;
  /** The durable consumer (consumer spans). */
  consumerGroup?: string;
  /** Further attributes, named from `SpanAttributes`. */
  attributes?: SpanAttrs;
}

export type SpanAttrs = Partial<Record<SpanAttribute, AttributeValue | undefined>>;

/** A started span. Every method is safe to call when tracing is off (it then does nothing). */
export interface OpenSpan {
  /** The span's own context as headers: what the next hop continues, or what a link points at. */
  readonly headers: TraceHeaders;
  /** Runs `fn` with this span active, so spans started inside (publish, fetch, pg) are its children. */
  run<T>(fn: () => T): T;
  set(attributes: SpanAttrs): void;
  /** Records the error and marks the span failed. */
  fail(err: unknown): void;
  end(): void;
}

let cachedTracer: Tracer | undefined;
const tracer = (): Tracer => (cachedTracer ??= trace.getTracer('@sluice/telemetry'));

/**
 * A PRODUCER span for a message about to be sent. Its parent is the active span, or, when none is
 * active, the trace context in `fallback` (a caller that kept the incoming traceparent). Put
 * `headers` on the message so the consumer's span becomes this one's child.
 *
 * @example
 * const span = startProducerSpan({ name: 'publish chat.admitted', destination: subject, messageId: id });
 * try { await send(span.headers); } catch (e) { span.fail(e); throw e; } finally { span.end(); }
 */
export function startProducerSpan(facts: MessageFacts, fallback?: TraceHeaders): OpenSpan {
  const active = context.active();
  const parent = trace.getSpan(active) === undefined && fallback?.traceparent ? propagation.extract(active, fallback) : active;
  return open(tracer().startSpan(facts.name, { kind: SpanKind.PRODUCER, attributes: messaging(facts, MessagingOperation.send) }, parent), parent);
}

/**
 * A CONSUMER span for a received message, the child of the producer span whose context came in
 * `incoming` (a new trace when there is none). `links` point at related spans in other traces.
 */
export function startConsumerSpan(facts: MessageFacts, incoming: TraceHeaders | undefined, links: TraceHeaders[] = []): OpenSpan {
  const parent = incoming?.traceparent ? propagation.extract(ROOT_CONTEXT, incoming) : ROOT_CONTEXT;
  const span = tracer().startSpan(
    facts.name,
    { kind: SpanKind.CONSUMER, attributes: messaging(facts, MessagingOperation.process), links: toLinks(links) },
    parent,
  );
  return open(span, parent);
}

/**
 * A root CONSUMER span for work on many messages at once (no one request's trace can be the
 * parent of all of them), linked to each message's producer span.
 */
export function startBatchSpan(facts: MessageFacts, messages: TraceHeaders[]): OpenSpan {
  const attributes = { ...messaging(facts, MessagingOperation.process), [SpanAttributes.messagingBatchMessageCount]: messages.length };
  return open(tracer().startSpan(facts.name, { kind: SpanKind.CONSUMER, root: true, attributes, links: toLinks(messages) }, ROOT_CONTEXT), ROOT_CONTEXT);
}

/**
 * Runs a message handler inside a CONSUMER span parented to the message's incoming context; a
 * throw marks the span failed and is rethrown.
 */
export async function traceProcess<T>(facts: MessageFacts, incoming: TraceHeaders | undefined, fn: () => Promise<T>): Promise<T> {
  const span = startConsumerSpan(facts, incoming);
  try {
    return await span.run(fn);
  } catch (err) {
    span.fail(err);
    throw err;
  } finally {
    span.end();
  }
}

/** Sets attributes on the active span (when tracing is on and one is active). */
export function tagActiveSpan(attributes: SpanAttrs): void {
  if (!tracingOn()) return;
  trace.getActiveSpan()?.setAttributes(clean(attributes));
}

/**
 * Names the HTTP server span after its route (`POST /v1/chat/completions`) and tags it: the http
 * instrumentation knows only the method. The server span is the one the http instrumentation
 * left in the context's RPC metadata; the active span is fastify's own request or hook span
 * (@fastify/otel) nested under it.
 */
export function tagHttpServerSpan(method: string, route: string | undefined, attributes: SpanAttrs = {}): void {
  if (!tracingOn()) return;
  const span = getRPCMetadata(context.active())?.span ?? trace.getActiveSpan();
  if (!span) return;
  if (route) span.updateName(`${method} ${route}`).setAttribute(SpanAttributes.httpRoute, route);
  span.setAttributes(clean(attributes));
}

/** Trace and span id of the active span, for log lines; undefined when none is active. */
export function activeTraceIds(): { trace_id: string; span_id: string } | undefined {
  const span = trace.getSpan(context.active());
  if (!span) return undefined;
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

function open(span: Span, parent: Context): OpenSpan {
  const ctx = trace.setSpan(parent, span);
  const headers: TraceHeaders = {};
  propagation.inject(ctx, headers);
  return {
    headers,
    run: (fn) => context.with(ctx, fn),
    set: (attributes) => void span.setAttributes(clean(attributes)),
    fail: (err) => {
      span.recordException(err instanceof Error ? err : String(err));
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
    },
    end: () => span.end(),
  };
}

function messaging(facts: MessageFacts, operation: MessagingOperation): Attributes {
  return clean({
    [SpanAttributes.messagingSystem]: MessagingSystem.nats,
    [SpanAttributes.messagingOperationType]: operation,
    [SpanAttributes.messagingOperationName]: operation === MessagingOperation.send ? 'publish' : operation,
    [SpanAttributes.messagingDestination]: facts.destination,
    [SpanAttributes.messagingMessageId]: facts.messageId,
    [SpanAttributes.messagingDestinationTemporary]: facts.temporaryDestination,
    [SpanAttributes.messagingConsumerGroup]: facts.consumerGroup,
    ...facts.attributes,
  });
}

function toLinks(all: TraceHeaders[]): Link[] {
  const links: Link[] = [];
  for (const h of all) {
    if (!h.traceparent) continue;
    const spanContext = trace.getSpanContext(propagation.extract(ROOT_CONTEXT, h));
    if (spanContext) links.push({ context: spanContext });
  }
  return links;
}

/** Attributes without the undefined ones (the SDK warns about them). */
function clean(attributes: SpanAttrs): Attributes {
  const out: Attributes = {};
  for (const [k, v] of Object.entries(attributes)) if (v !== undefined) out[k] = v;
  return out;
}
