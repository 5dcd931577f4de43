export { cacheKey, canonicalJson } from './key.js';
export { decideLookup, decideStore, type LookupDecision, type StoreDecision } from './cache.js';
export { asEntry, type CacheEntry, type CachedAnswer } from './entry.js';
export { ensureCacheTtl, followCacheTtl } from './ttl.js';
export { onChatAdmitted, onChatCompleted, type CacheDeps } from './handlers.js';
