export { startInvoker } from './service.js';
export { createInvoker, type InvokerDeps } from './invoke.js';
export { ClientPool, callUpstream, type UpstreamAnswer, type UpstreamCall } from './upstream.js';
export * from './circuit.js';
export * from './plan.js';
export * from './retry.js';
