/** Stream and bucket names and their shapes. Ensured at start by every service (idempotent). */
export const Topology = {
  stream: {
    name: 'SLUICE_EVENTS',
    subjects: ['sluice.evt.>'],
    /** Default max age; `SLUICE_STREAM_MAX_AGE_HOURS` overrides. */
    maxAgeHours: 24 * 7,
    duplicateWindowMs: 2 * 60_000,
  },
  buckets: {
    limits: { name: 'sluice_limits', ttlSeconds: 0, history: 1 },
    cache: { name: 'sluice_cache', ttlSeconds: 3600, history: 1 },
    control: { name: 'sluice_control', ttlSeconds: 0, history: 5 },
    budgets: { name: 'sluice_budgets', ttlSeconds: 0, history: 1 },
    results: { name: 'sluice_results', ttlSeconds: 3600, history: 1 },
  },
  /** Durable consumer names, one per (service, input). Replicas share them. */
  consumers: {
    limiter: 'limiter',
    /** chat.completed -> token buckets charged the actual usage minus the estimate. */
    limiterReconcile: 'limiter-reconcile',
    cacheLookup: 'cache-lookup',
    cacheStore: 'cache-store',
    router: 'router',
    invoker: 'invoker',
    ledger: 'ledger',
    degraderInvoke: 'degrader-invoke',
    degraderCircuit: 'degrader-circuit',
  },
} as const;

/** Keys in the control bucket. */
export const ControlKeys = {
  config: 'config',
  degrade: 'degrade',
} as const;
