import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { context, propagation, trace, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { SpanAttributes } from './attributes.js';
import { createLogger, withTrace } from './logger.js';
import { startBatchSpan, startClientSpan, startConsumerSpan, startProducerSpan, tagActiveSpan, traceProcess } from './spans.js';
import { markTracingStarted, shutdownTracing, tracingOn } from './state.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';
const incoming = { traceparent: `00-${TRACE}-${PARENT}-01` };

describe('tracing off', () => {
  it('makes a client span that is nothing: run calls straight through', async () => {
    const span = startClientSpan('chat gpt-4o-mini', { [SpanAttributes.genAiOperation]: 'chat' });
    expect(await span.run(async () => 'answered')).toBe('answered');
    expect(span.headers).toEqual({});
  });

  it('is off until the preload starts it, and withTrace binds the ids from the traceparent', () => {
    expect(tracingOn()).toBe(false);
    const lines: string[] = [];
    const log = createLogger('unit', 'info', new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
    withTrace(log, incoming.traceparent).info('hi');
    log.info('plain');
    expect(JSON.parse(lines[0]!)).toMatchObject({ trace_id: TRACE, span_id: PARENT });
    expect(JSON.parse(lines[1]!)).not.toHaveProperty('trace_id');
  });
});

describe('tracing on', () => {
  const exporter = new InMemorySpanExporter();
  let sdk: NodeSDK;
  beforeAll(() => {
    sdk = new NodeSDK({
      spanProcessors: [new SimpleSpanProcessor(exporter)],
      instrumentations: [],
      metricReaders: [],
      logRecordProcessors: [],
      autoDetectResources: false,
    });
    sdk.start();
    markTracingStarted({ shutdown: () => sdk.shutdown() });
  });
  afterEach(() => exporter.reset());
  afterAll(async () => {
    await shutdownTracing();
    trace.disable();
    context.disable();
    propagation.disable();
  });
  const spans = () => exporter.getFinishedSpans();

  it('continues the fallback traceparent when no span is active, and sends its own context on', () => {
    const span = startProducerSpan({ name: 'publish chat.requested', destination: 'sluice.evt.chat.requested.dev', messageId: 'r:chat.requested' }, incoming);
    span.end();
    const [s] = spans();
    expect(s!.kind).toBe(SpanKind.PRODUCER);
    expect(s!.spanContext().traceId).toBe(TRACE);
    expect(s!.parentSpanContext?.spanId).toBe(PARENT);
    expect(span.headers.traceparent).toBe(`00-${TRACE}-${s!.spanContext().spanId}-01`);
    expect(s!.attributes).toMatchObject({
      [SpanAttributes.messagingSystem]: 'nats',
      [SpanAttributes.messagingOperationType]: 'send',
      [SpanAttributes.messagingMessageId]: 'r:chat.requested',
    });
  });

  it('runs a handler inside a consumer span whose children are what it publishes', async () => {
    await traceProcess({ name: 'process chat.requested', destination: 'sluice.evt.chat.requested.dev', consumerGroup: 'limiter' }, incoming, async () => {
      tagActiveSpan({ [SpanAttributes.requestId]: 'req_1' });
      // the active consumer span wins over a stale fallback
      startProducerSpan({ name: 'publish chat.admitted', destination: 'x' }, { traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` }).end();
    });
    const consumer = spans().find((s) => s.kind === SpanKind.CONSUMER)!;
    const producer = spans().find((s) => s.kind === SpanKind.PRODUCER)!;
    expect(consumer.parentSpanContext?.spanId).toBe(PARENT);
    expect(consumer.attributes).toMatchObject({ [SpanAttributes.requestId]: 'req_1', [SpanAttributes.messagingConsumerGroup]: 'limiter' });
    expect(producer.spanContext().traceId).toBe(TRACE);
    expect(producer.parentSpanContext?.spanId).toBe(consumer.spanContext().spanId);
  });

  it('marks a failed handler span as an error and rethrows', async () => {
    await expect(traceProcess({ name: 'process x', destination: 'x' }, undefined, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    const [s] = spans();
    expect(s!.status).toMatchObject({ code: SpanStatusCode.ERROR, message: 'boom' });
    expect(s!.parentSpanContext).toBeUndefined();
  });

  it('opens a client span under the active one, with its attributes from the start; the work inside is its child', async () => {
    await traceProcess({ name: 'process chat.routed', destination: 'x' }, incoming, async () => {
      const call = startClientSpan('chat gpt-4o-mini', { [SpanAttributes.genAiOperation]: 'chat', [SpanAttributes.serverPort]: 8090 });
      await call.run(async () => startProducerSpan({ name: 'inner', destination: 'y' }).end());
      call.fail('upstream said 500');
      call.set({ [SpanAttributes.errorType]: '500' });
      call.end();
    });
    const consumer = spans().find((s) => s.kind === SpanKind.CONSUMER)!;
    const client = spans().find((s) => s.kind === SpanKind.CLIENT)!;
    const inner = spans().find((s) => s.name === 'inner')!;
    expect(client.name).toBe('chat gpt-4o-mini');
    expect(client.parentSpanContext?.spanId).toBe(consumer.spanContext().spanId);
    expect(inner.parentSpanContext?.spanId).toBe(client.spanContext().spanId);
    expect(client.attributes).toEqual({ 'gen_ai.operation.name': 'chat', 'server.port': 8090, 'error.type': '500' });
    expect(client.status).toMatchObject({ code: SpanStatusCode.ERROR, message: 'upstream said 500' });
    expect(client.events.map((e) => e.name)).toEqual(['exception']);
  });

  it('links a batch span to each message and each message span back to the batch', () => {
    const other = { traceparent: `00-${'c'.repeat(32)}-${'d'.repeat(16)}-01` };
    const batch = startBatchSpan({ name: 'process batch', destination: 'sluice.evt.>' }, [incoming, other]);
    const one = startConsumerSpan({ name: 'process chat.completed', destination: 'y' }, incoming, [batch.headers]);
    one.end();
    batch.end();
    const [perEvent, whole] = spans();
    expect(whole!.parentSpanContext).toBeUndefined();
    expect(whole!.links.map((l) => l.context.spanId)).toEqual([PARENT, 'd'.repeat(16)]);
    expect(whole!.attributes[SpanAttributes.messagingBatchMessageCount]).toBe(2);
    expect(perEvent!.parentSpanContext?.spanId).toBe(PARENT);
    expect(perEvent!.links[0]!.context.spanId).toBe(whole!.spanContext().spanId);
  });

  describe('with a parent-based sampler', () => {
    const unsampled = { traceparent: `00-${TRACE}-${PARENT}-00` };
    beforeAll(() => markTracingStarted({ shutdown: () => sdk.shutdown(), followsParent: true }));
    afterAll(() => markTracingStarted({ shutdown: () => sdk.shutdown() }));

    it('builds nothing for an unsampled request, and hands its context on unchanged', async () => {
      let asked = 0;
      const facts = () => (asked++, { name: 'process chat.admitted', destination: 'x' });
      const consumer = startConsumerSpan(facts, unsampled);
      expect(consumer.headers).toEqual(unsampled);
      const published = await traceProcess(facts, unsampled, async () => {
        expect(trace.getActiveSpan()?.spanContext()).toMatchObject({ traceId: TRACE, spanId: PARENT, traceFlags: 0 });
        tagActiveSpan({ [SpanAttributes.requestId]: 'req_3' });
        return startProducerSpan(facts).headers;
      });
      expect(published.traceparent).toBe(unsampled.traceparent);
      expect(startProducerSpan(facts, unsampled).headers).toEqual(unsampled);
      expect(asked).toBe(0);
      expect(spans()).toEqual([]);
    });

    it('still records a sampled request, and decides a new trace at its root', () => {
      startConsumerSpan(() => ({ name: 'process chat.admitted', destination: 'x' }), incoming).end();
      startConsumerSpan({ name: 'process chat request', destination: 'y' }, undefined).end();
      const [child, root] = spans();
      expect(child!.parentSpanContext?.spanId).toBe(PARENT);
      expect(child!.attributes[SpanAttributes.messagingDestination]).toBe('x');
      expect(root!.parentSpanContext).toBeUndefined();
    });
  });

  it('stamps log lines with the active span, and only once', async () => {
    const out: string[] = [];
    const log = createLogger('unit', 'info', new Writable({ write: (c, _e, cb) => (out.push(String(c)), cb()) }));
    await traceProcess({ name: 'process x', destination: 'x' }, incoming, async () => {
      withTrace(log, `00-${'e'.repeat(32)}-${'f'.repeat(16)}-01`, { requestId: 'req_2' }).info('inside');
    });
    log.info('outside');
    const [inside, outside] = out.map((l) => JSON.parse(l) as Record<string, unknown>);
    const [s] = spans();
    expect(inside).toMatchObject({ trace_id: TRACE, span_id: s!.spanContext().spanId, requestId: 'req_2' });
    expect(out[0]!.match(/"trace_id"/g)).toHaveLength(1);
    expect(outside).not.toHaveProperty('trace_id');
  });
});
