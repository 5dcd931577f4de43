import { metrics } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { defaultResource, detectResources, envDetector } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader, type IMetricReader } from '@opentelemetry/sdk-metrics';
import type { MetricsHandle } from './metrics.js';
import { observeProcess } from './process-metrics.js';

/**
 * The MeterProvider behind `startMetrics` (metrics.ts), loaded only when metrics are on. The
 * Prometheus reader collects on each scrape (nothing runs between scrapes); the OTLP reader, when
 * an endpoint is set, collects and pushes on its interval. Registered as the global provider, so
 * `meter()` hands out its meters.
 *
 * The preload starts it after tracing, on purpose: the auto-instrumentations (http, undici, pg)
 * take their meter when they are built, so they keep the no-op one and record no http.* or db.*
 * metrics of their own, which would exist only while tracing is on and cost every request.
 */
export async function startMeterProvider(env: NodeJS.ProcessEnv): Promise<MetricsHandle> {
  const prometheus = new PrometheusExporter({ preventServerStart: true });
  const readers: IMetricReader[] = [prometheus];
  const otlp = env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (otlp && !(env.OTEL_METRICS_EXPORTER ?? '').split(',').includes('none')) {
    // loaded only when pushing: the OTLP transformer is not small
    const { OTLPMetricExporter } = await import('@opentelemetry/exporter-metrics-otlp-http');
    const exportIntervalMillis = positive(env.OTEL_METRIC_EXPORT_INTERVAL) ?? 60_000;
    const exportTimeoutMillis = Math.min(positive(env.OTEL_METRIC_EXPORT_TIMEOUT) ?? 30_000, exportIntervalMillis);
    readers.push(new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter(), exportIntervalMillis, exportTimeoutMillis }));
  }
  // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (the stack sets the first to sluice-<service>)
  const resource = defaultResource().merge(detectResources({ detectors: [envDetector] }));
  const provider = new MeterProvider({ resource, readers });
  metrics.setGlobalMeterProvider(provider);
  // CPU, memory and event loop, under this library's scope: read at collection only
  observeProcess(provider.getMeter('@sluice/telemetry'));
  return {
    serve: (req, res) => prometheus.getMetricsRequestHandler(req, res),
    shutdown: () => provider.shutdown(),
  };
}

function positive(raw: string | undefined): number | undefined {
  const n = Number(raw);
  return raw && Number.isFinite(n) && n > 0 ? n : undefined;
}
