/**
 * Preload that starts tracing before anything else is imported: auto-instrumentation patches
 * http, pg and undici as they load, so it must come first.
 *
 *   node --import @sluice/telemetry/register services/<name>/dist/main.js
 *
 * Without OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) it does nothing and
 * the SDK is never even loaded; OTEL_SDK_DISABLED=true turns it off as well.
 */
const env = process.env;
if ((env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) && env.OTEL_SDK_DISABLED !== 'true') {
  const { startTracing } = await import('./sdk.js');
  startTracing();
}

export {};
