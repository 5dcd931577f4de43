export { startInvoker, wireInvoker } from './service.js';
export { createInvoker, type Arrival, type Invoke, type InvokerDeps } from './invoke.js';
export { attemptSuffix, decideDelivery, mayHaveAnswer, type StoredAnswer } from './replay.js';
export { kvResultStore, type ResultStore } from './results.js';
export { ClientPool, callUpstream, type UpstreamAnswer, type UpstreamCall } from './upstream.js';
export * from './circuit.js';
export * from './plan.js';
export * from './retry.js';
