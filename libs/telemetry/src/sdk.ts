import type { IncomingMessage } from 'node:http';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { FastifyOtelInstrumentation } from '@fastify/otel';
import { getNodeAutoInstrumentations } from '@opentelemetry/auto-instrumentations-node';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { markTracingStarted } from './state.js';

/**
 * Instrumentations on unless OTEL_NODE_ENABLED_INSTRUMENTATIONS says otherwise: the HTTP server
 * and client (ingress, ledger API, and the invoker's upstream calls, which go through node:http),
 * undici (global fetch, where the SDK still uses it: file uploads) and pg (the ledger). Fastify
 * comes from @fastify/otel (the auto-instrumentations no longer carry one): a request span per
 * route under the HTTP server span, with its hooks and handler. The rest (fs, dns, net, and
 * pino, whose job the logger's mixin does) would add spans or cost on every request without
 * telling anything the message spans do not.
 */
const DEFAULT_INSTRUMENTATIONS = 'http,undici,pg';

/** Paths polled by probes: a span per poll would bury the requests. */
const UNTRACED_PATHS = new Set(['/healthz', '/readyz']);

/**
 * Starts the OpenTelemetry SDK for this process: traces only (no metrics, no OTLP logs; logs go
 * to stdout with trace ids), exported over OTLP/HTTP (JSON) to OTEL_EXPORTER_OTLP_ENDPOINT in
 * batches (OTEL_BSP_* tune them), service name from OTEL_SERVICE_NAME. Must run before the
 * modules it instruments are loaded, hence the preload (`register.ts`).
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
      // registers itself on every Fastify instance as it is created (diagnostics channel)
      new FastifyOtelInstrumentation({ registerOnInitialization: true, ignorePaths: ({ url }) => UNTRACED_PATHS.has(url) }),
    ],
  });
  sdk.start();
  markTracingStarted({ shutdown: () => sdk.shutdown() });
}
