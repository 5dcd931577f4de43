import type { IncomingMessage } from 'node:http';
import { context, trace, type Context, type ProxyTracerProvider, type Span, type SpanOptions, type Tracer } from '@opentelemetry/api';
import { isTracingSuppressed } from '@opentelemetry/core';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { FastifyOtelInstrumentation } from '@fastify/otel';
import { getNodeAutoInstrumentations } from '@opentelemetry/auto-instrumentations-node';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { isUnsampled } from './spans.js';
import { markTracingStarted } from './state.js';

/**
 * Instrumentations on unless OTEL_NODE_ENABLED_INSTRUMENTATIONS says otherwise: the HTTP server
 * and client (ingress, ledger API, and the invoker's upstream calls, which go through node:http),
 * undici (global fetch, where the SDK still uses it: file uploads) and pg (the ledger). Fastify
 * comes from @fastify/otel (the auto-instrumentations no longer carry one): a request span per
 * route under the HTTP server span, and its handler's. The rest (fs, dns, net, and
 * pino, whose job the logger's mixin does) would add spans or cost on every request without
 * telling anything the message spans do not.
 */
const DEFAULT_INSTRUMENTATIONS = 'http,undici,pg';

/** Paths polled by probes and by Prometheus: a span per poll would bury the requests. */
const UNTRACED_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * Starts the OpenTelemetry SDK for this process: traces only (metrics have a provider of their
 * own, metrics-sdk.ts, that runs with tracing off too; no OTLP logs: logs go to stdout with trace
 * ids), exported over OTLP/HTTP (JSON) to OTEL_EXPORTER_OTLP_ENDPOINT in batches (OTEL_BSP_*
 * tune them), service name from OTEL_SERVICE_NAME. Must run before the modules it instruments
 * are loaded, hence the preload (`register.ts`).
 */
export function startTracing(): void {
  process.env.OTEL_NODE_ENABLED_INSTRUMENTATIONS ??= DEFAULT_INSTRUMENTATIONS;
  process.env.OTEL_LOGS_EXPORTER ??= 'none';
  // stable HTTP semantic conventions (url.full, http.request.method), as undici already emits
  process.env.OTEL_SEMCONV_STABILITY_OPT_IN ??= 'http';
  const sdk = new NodeSDK({
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
    metricReaders: [],
    instrumentations: [
      getNodeAutoInstrumentations({
        '@opentelemetry/instrumentation-http': {
          ignoreIncomingRequestHook: (req: IncomingMessage) => UNTRACED_PATHS.has((req.url ?? '').split('?')[0]!),
        },
        // a query outside any span is start-up work (migrations), not a request's
        '@opentelemetry/instrumentation-pg': { requireParentSpan: true },
      }),
      // registers itself on every Fastify instance as it is created (diagnostics channel). The
      // request and handler spans only: a span per hook (the ingress's tagging and key check)
      // cost every request a context switch and a span, and timed work the handler span holds
      new FastifyOtelInstrumentation({ registerOnInitialization: true, instrumentHooks: false, ignorePaths: ({ url }) => UNTRACED_PATHS.has(url) }),
    ],
  });
  sdk.start();
  // NodeSDK's default sampler is parentbased_always_on
  const followsParent = (process.env.OTEL_TRACES_SAMPLER ?? 'parentbased_always_on').startsWith('parentbased_');
  if (followsParent) skipUnsampledChildren();
  markTracingStarted({ shutdown: () => sdk.shutdown(), followsParent });
}

/**
 * Every instrumentation's spans (fastify's hooks and handler, the upstream call, pg queries)
 * start through the SDK's `Tracer.startSpan`, which for the child of an unsampled span still
 * makes a span id, copies and checks the attributes and asks the sampler, only to return a span
 * that records nothing: at a 10 % ratio, nine requests in ten paid that for every span. With a
 * parent-based sampler the answer is known at once, so this returns the parent's context,
 * unrecorded, for such a child (its span id stays the parent's: nothing refers to it). The
 * method is patched on the SDK tracer's prototype, the one place every tracer shares; a root
 * span, a sampled parent or suppressed tracing go to the SDK's own.
 */
function skipUnsampledChildren(): void {
  const provider = (trace.getTracerProvider() as ProxyTracerProvider).getDelegate();
  const proto = Object.getPrototypeOf(provider.getTracer('@sluice/telemetry')) as Tracer;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- always called with the tracer as `this`, below
  const startSpan = proto.startSpan;
  proto.startSpan = function (this: Tracer, name: string, options?: SpanOptions, ctx: Context = context.active()): Span {
    const parent = options?.root ? undefined : trace.getSpanContext(ctx);
    if (parent && isUnsampled(parent) && !isTracingSuppressed(ctx)) return trace.wrapSpanContext(parent);
    return startSpan.call(this, name, options, ctx);
  };
}
