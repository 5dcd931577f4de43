/**
 * @sluice/openai-sim: an OpenAI-compatible upstream simulator with exact
 * token accounting, rate limits and fault injection.
 */
export { startSim } from './server.js';
export type { Faults, Sim, SimOptions, SimStats } from './types.js';
export { DEFAULT_MODELS } from './state.js';
export { countPromptTokens, countText } from './tokens.js';
export { seededRandom } from './faults.js';
