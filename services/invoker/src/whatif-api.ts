/**
 * The invoker's balancing, for the what-if replay (`npm run whatif`, docs/whatif.md): the order a
 * model's deployments are tried in (weights, stickiness, health), as the invoker orders them.
 */
export { orderBlock, type Option, type Policy } from './balance.js';
