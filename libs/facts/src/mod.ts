export { bodyFacts, bodyFactsAsync, DEFAULT_OUTPUT_TOKENS, estimatedTokens, type BodyFacts, type Endpoint } from './facts.js';
export { describeComplexity, type Complexity } from './complexity.js';
export { cacheKey, canonicalJson } from './key.js';
export { warmTokenizer } from '@sluice/tokens';
