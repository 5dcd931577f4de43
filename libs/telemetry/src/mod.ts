export * from './logger.js';
export * from './attributes.js';
export * from './spans.js';
export { tracingOn, shutdownTracing } from './state.js';
export { meter, metricsOn, startMetrics, shutdownMetrics, serveMetrics, metricsHandler, type MeterName, type MetricsServer } from './metrics.js';
export { Metrics, GenAiBuckets } from './metric-names.js';
