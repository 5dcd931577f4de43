import {
  context,
  INVALID_SPANID,
  INVALID_TRACEID,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Attributes,
  type AttributeValue,
  type Context,
  type Link,
  type Span,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api';
import { MessagingOperation, MessagingSystem, SpanAttributes, type SpanAttribute } from './attributes.js';
import { followsParent, tracingOn } from './state.js';
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

/**
 * A message's facts, or a function that makes them, called only when a span is built: a caller
 * whose facts cost something (parsing the event) pays nothing for a request that is not sampled.
 */
export type FactsOf = MessageFacts | (() => MessageFacts);

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
 * `headers` on the message so the consumer's span becomes this one's child. Under a parent-based
 * sampler an unsampled parent gets no child built: `headers` are then the parent's own.
 *
 * @example
 * const span = startProducerSpan({ name: 'publish chat.admitted', destination: subject, messageId: id });
 * try { await send(span.headers); } catch (e) { span.fail(e); throw e; } finally { span.end(); }
 */
export function startProducerSpan(facts: FactsOf, fallback?: TraceHeaders): OpenSpan {
  const active = context.active();
  const activeSpan = trace.getSpan(active);
  if (activeSpan === undefined && fallback?.traceparent) {
    const skipped = unsampledChildOf(fallback);
    if (skipped) return skipped;
  }
  if (activeSpan && followsParent() && isUnsampled(activeSpan.spanContext())) return passThrough(active, headersOf(activeSpan.spanContext()));
  const parent = activeSpan === undefined && fallback?.traceparent ? propagation.extract(active, fallback) : active;
  return start(facts, SpanKind.PRODUCER, MessagingOperation.send, parent);
}

/**
 * A CONSUMER span for a received message, the child of the producer span whose context came in
 * `incoming` (a new trace when there is none). `links` point at related spans in other traces.
 * As for a producer, an unsampled parent under a parent-based sampler gets no span: `run` runs
 * under the incoming context and `headers` hand it on.
 */
export function startConsumerSpan(facts: FactsOf, incoming: TraceHeaders | undefined, links: TraceHeaders[] = []): OpenSpan {
  const skipped = incoming && unsampledChildOf(incoming);
  if (skipped) return skipped;
  const parent = incoming?.traceparent ? propagation.extract(ROOT_CONTEXT, incoming) : ROOT_CONTEXT;
  return start(facts, SpanKind.CONSUMER, MessagingOperation.process, parent, links);
}

/**
 * A root CONSUMER span for work on many messages at once (no one request's trace can be the
 * parent of all of them), linked to each message's producer span.
 */
export function startBatchSpan(facts: MessageFacts, messages: TraceHeaders[]): OpenSpan {
  const span = tracer().startSpan(facts.name, { kind: SpanKind.CONSUMER, root: true }, ROOT_CONTEXT);
  if (span.isRecording()) {
    span.setAttributes({ ...messaging(facts, MessagingOperation.process), [SpanAttributes.messagingBatchMessageCount]: messages.length });
    span.addLinks(toLinks(messages));
  }
  return open(span, ROOT_CONTEXT);
}

/**
 * Runs a message handler inside a CONSUMER span parented to the message's incoming context; a
 * throw marks the span failed and is rethrown.
 */
export async function traceProcess<T>(facts: FactsOf, incoming: TraceHeaders | undefined, fn: () => Promise<T>): Promise<T> {
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

/** What a client span is when tracing is off: `run` calls straight through. */
const NO_SPAN: OpenSpan = { headers: {}, run: (fn) => fn(), set: () => undefined, fail: () => undefined, end: () => undefined };

/**
 * A CLIENT span for a call out of Sluice (the invoker's upstream model call: `chat gpt-4o-mini`),
 * the child of the active span; spans started inside `run` (the HTTP client's) are its children.
 * `attributes` are set at its start. With tracing off it is a no-op whose `run` calls straight
 * through.
 *
 * @example
 * const span = startClientSpan('chat gpt-4o-mini', { [SpanAttributes.genAiOperation]: 'chat' });
 * try { return await span.run(() => call()); } catch (e) { span.fail(e); throw e; } finally { span.end(); }
 */
export function startClientSpan(name: string, attributes: SpanAttrs): OpenSpan {
  if (!tracingOn()) return NO_SPAN;
  const parent = context.active();
  return open(tracer().startSpan(name, { kind: SpanKind.CLIENT, attributes: clean(attributes) }, parent), parent);
}

/** Sets attributes on the active span (when tracing is on and one is active). */
export function tagActiveSpan(attributes: SpanAttrs): void {
  if (!tracingOn()) return;
  const span = trace.getActiveSpan();
  if (span?.isRecording()) span.setAttributes(clean(attributes));
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
  if (!span?.isRecording()) return;
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

/**
 * Starts a span under `parent`. The sampler decides from the trace (id, parent), not from
 * attributes or links, so those are made only for a span that records.
 */
function start(factsOf: FactsOf, kind: SpanKind, operation: MessagingOperation, parent: Context, links: TraceHeaders[] = []): OpenSpan {
  const facts = typeof factsOf === 'function' ? factsOf() : factsOf;
  const span = tracer().startSpan(facts.name, { kind }, parent);
  if (span.isRecording()) {
    span.setAttributes(messaging(facts, operation));
    if (links.length > 0) span.addLinks(toLinks(links));
  }
  return open(span, parent);
}

/**
 * With a parent-based sampler, the child of an unsampled span is not recorded: rather than
 * building a span that records nothing (an id, attributes, the sampler, a context to inject),
 * the work runs under the incoming context and the same context goes on to the next hop, so
 * the whole request stays unsampled and one trace id. Undefined when the child may record.
 */
function unsampledChildOf(incoming: TraceHeaders): OpenSpan | undefined {
  if (!followsParent() || !incoming.traceparent) return undefined;
  const parent = unsampledParent(incoming.traceparent);
  if (!parent) return undefined;
  // a tracestate (rare: a caller's vendor data) goes through the propagator, which parses it
  const ctx = incoming.tracestate ? propagation.extract(ROOT_CONTEXT, incoming) : trace.setSpanContext(ROOT_CONTEXT, parent);
  return passThrough(ctx, incoming);
}

const noop = () => undefined;
/** A span that is not one: runs work under `ctx` and hands `headers` on. */
function passThrough(ctx: Context, headers: TraceHeaders): OpenSpan {
  return { headers, run: (fn) => context.with(ctx, fn), set: noop, fail: noop, end: noop };
}

/** W3C trace context, version 00: `00-<trace id>-<parent id>-<flags>`, lowercase hex. */
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * The remote span context of a valid, unsampled traceparent; undefined for a sampled one or
 * anything else (those take the SDK's path). One regex and no propagator: this runs for nine
 * messages in ten at a 10 % ratio.
 */
function unsampledParent(traceparent: string): SpanContext | undefined {
  const m = TRACEPARENT.exec(traceparent);
  if (!m) return undefined;
  const sc: SpanContext = { traceId: m[1]!, spanId: m[2]!, traceFlags: parseInt(m[3]!, 16), isRemote: true };
  return isUnsampled(sc) ? sc : undefined;
}

/** A real span context (not the invalid one a suppressed or missing span has) whose trace is not sampled. */
export function isUnsampled(sc: SpanContext): boolean {
  return (sc.traceFlags & TraceFlags.SAMPLED) === 0 && sc.traceId !== INVALID_TRACEID && sc.spanId !== INVALID_SPANID;
}

/** A span context as W3C headers, formatted directly (what the propagator would write, without its validation of ids we made). */
function headersOf(sc: SpanContext): TraceHeaders {
  const headers: TraceHeaders = { traceparent: `00-${sc.traceId}-${sc.spanId}-${sc.traceFlags.toString(16).padStart(2, '0')}` };
  const state = sc.traceState?.serialize();
  if (state) headers.tracestate = state;
  return headers;
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
