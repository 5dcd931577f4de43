/**
 * The limiter's pure decisions, for the what-if replay (`npm run whatif`, docs/whatif.md): the
 * token-bucket admission and adjustment, the token estimate and the buckets' keys, the budgets'
 * check and the cost estimate they reserve, the global limit learned from the upstreams, as the
 * service decides them. Nothing here reads NATS or KV.
 */
export { adjust, decide, layersOf, type Bucket, type Buckets, type Layer, type Limits } from './limiter.js';
export { estimateTokens } from './estimate.js';
export { limitKeys, type LimitKeys } from './keys.js';
export { checkBudgets, counterOf, type BudgetVerdict, type CounterState } from './budget-check.js';
export { estimateCostNanos } from './cost.js';
export { evolve, forget, globalLimit, initialState, type AdaptiveState } from './adaptive.js';

export { limitsFor } from './handlers.js';
