/**
 * Preload that starts tracing and metrics before anything else is imported: auto-instrumentation
 * patches http, pg and undici as they load, so it must come first, and a service's instruments
 * are made from the global meter provider, so it must exist before they are.
 *
 *   node --import @sluice/telemetry/register services/<name>/dist/main.js
 *
 * Tracing: without OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) it does
 * nothing and the SDK is never even loaded. Metrics: on unless SLUICE_METRICS=off (metrics.ts).
 * OTEL_SDK_DISABLED=true turns both off.
 */
import { startMetrics } from './metrics.js';

const env = process.env;
if ((env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) && env.OTEL_SDK_DISABLED !== 'true') {
  const { startTracing } = await import('./sdk.js');
  startTracing();
}
// after tracing: see metrics-sdk.ts
await startMetrics();
