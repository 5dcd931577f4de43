/**
 * The cache's pure decisions, for the what-if replay (`npm run whatif`, docs/whatif.md): the exact
 * lookup, whether an answer is kept and for how long, and the tenant's policy, TTL and semantic
 * threshold, as the service decides them. Nothing here reads NATS.
 */
export { decideLookup, decideStore, unstorable } from './cache.js';
export { policyFor, semanticThreshold, ttlFor } from './policy.js';
export type { CacheEntry } from './entry.js';
