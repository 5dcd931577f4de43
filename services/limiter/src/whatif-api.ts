import type { RequestKey, SluiceConfig } from '@sluice/contracts';
import type { LayerRate, Limits } from './limiter.js';

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

/**
 * The limits that apply to a request under `config`: the tenant's (or `limits.tenantDefault`),
 * the user's when it names one (the tenant's `userLimits` or `limits.userDefault`), its virtual
 * key's own, and `global` (default: `limits.global` as configured, nothing learned).
 *
 * The same rule as handlers.ts's private `limitsFor`, which the service runs; kept beside it until
 * that one is exported (a change to either must be made to both).
 *
 * @example
 * limitsFor(config, 'acme', 'u1') // { tenant: { requestsPerMinute: 600, ... }, user: {...}, global: {...} }
 */
export function limitsFor(
  config: SluiceConfig,
  tenantId: string,
  user: string | undefined,
  key?: RequestKey,
  global: LayerRate = config.limits.global,
): Limits {
  const tenant = config.tenants.find((t) => t.id === tenantId);
  const limits: Limits = { tenant: tenant?.limits ?? config.limits.tenantDefault, global };
  if (user !== undefined) limits.user = tenant?.userLimits ?? config.limits.userDefault;
  if (key?.limits) limits.key = key.limits;
  return limits;
}
