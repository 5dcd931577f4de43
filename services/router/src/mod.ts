export { route, pickTier, candidatesFor, EXPLICIT_TIER, type RouteDecision, type RouteInput } from './router.js';
export { complexity, describeComplexity, HARD_WORDS, type Complexity } from './complexity.js';
export { onCacheMissed, type RouterDeps } from './handler.js';
