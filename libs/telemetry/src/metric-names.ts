import type {
  METRIC_GEN_AI_CLIENT_OPERATION_DURATION,
  METRIC_GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
  METRIC_GEN_AI_CLIENT_TOKEN_USAGE,
} from '@opentelemetry/semantic-conventions/incubating';

/**
 * Every metric Sluice records, by its OpenTelemetry name, with its unit: the table in
 * docs/metrics.md, once in code. Prometheus shows each with dots as underscores, counters with
 * `_total`, histograms as `_bucket`/`_sum`/`_count`, and no unit suffix. The GenAI names are
 * semconv's (incubating: copied and checked with `satisfies`, as in attributes.ts).
 */
export const Metrics = {
  /** Tokens per upstream call, one point per `gen_ai.token.type` (histogram). */
  genAiTokenUsage: { name: 'gen_ai.client.token.usage' satisfies typeof METRIC_GEN_AI_CLIENT_TOKEN_USAGE, unit: '{token}' },
  /** Seconds from sending an upstream call to its whole answer or its failure (histogram). */
  genAiOperationDuration: { name: 'gen_ai.client.operation.duration' satisfies typeof METRIC_GEN_AI_CLIENT_OPERATION_DURATION, unit: 's' },
  /** Seconds from sending a streamed upstream call to its first chunk (histogram; streamed calls only). */
  genAiTimeToFirstChunk: {
    name: 'gen_ai.client.operation.time_to_first_chunk' satisfies typeof METRIC_GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
    unit: 's',
  },
  requests: { name: 'sluice.requests', unit: '{request}' },
  requestDuration: { name: 'sluice.request.duration', unit: 's' },
  hopDuration: { name: 'sluice.hop.duration', unit: 's' },
  cost: { name: 'sluice.cost', unit: 'USD' },
  cacheHits: { name: 'sluice.cache.hits', unit: '{request}' },
  cacheSavings: { name: 'sluice.cache.savings', unit: 'USD' },
  throttles: { name: 'sluice.throttles', unit: '{request}' },
  circuitState: { name: 'sluice.circuit.state', unit: '1' },
  degradeLevel: { name: 'sluice.degrade.level', unit: '1' },
  consumerPending: { name: 'sluice.consumer.pending', unit: '{message}' },
  budgetUtilization: { name: 'sluice.budget.utilization', unit: '1' },
} as const;

/**
 * Histogram bucket boundaries semconv asks for (`ExplicitBucketBoundaries` of the GenAI client
 * metrics): token counts in powers of 4 from 1 to 4^13, durations in seconds doubling from 10 ms
 * to 81.92 s (time to first chunk uses the durations').
 */
export const GenAiBuckets = {
  tokens: [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864],
  seconds: [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92],
} as const;
