export { route, pickTier, candidatesFor, EXPLICIT_TIER, type RouteDecision, type RouteInput } from './router.js';
export { complexity, describeComplexity, HARD_WORDS, type Complexity } from './complexity.js';
export { onCacheMissed, STATIC_FALLBACK, type RouterDeps } from './handler.js';
