/**
 * The router's pure decisions, for the what-if replay (`npm run whatif`, docs/whatif.md): the same
 * functions the service runs, so a replay routes a recorded request exactly as the router would
 * under a candidate config. Nothing here reads NATS.
 */
export { route, candidatesFor, type RouteDecision, type RouteInput } from './router.js';
