export { cacheKey, canonicalJson } from './key.js';
export { decideLookup, decideStore, type LookupDecision, type StoreDecision } from './cache.js';
export { asEntry, type CacheEntry, type CachedAnswer } from './entry.js';
export { ensureCacheTtl } from './ttl.js';
export { startCache } from './start.js';
