export * from './logger.js';
export * from './attributes.js';
export * from './spans.js';
export { tracingOn, shutdownTracing } from './state.js';
