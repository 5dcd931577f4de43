export * from './limiter.js';
export { estimateTokens, promptTokens, DEFAULT_COMPLETION_TOKENS } from './estimate.js';
export { LimitStore, limitKeys, type LimitKeys, type LimitStoreOptions } from './store.js';
export { limitsFor, onChatRequested, onChatCompleted, type LimiterDeps } from './handlers.js';
