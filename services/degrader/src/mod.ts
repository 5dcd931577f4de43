export { decide, evolve, initialState, openCircuits, ratioLevel, degradeRecord, MAX_AUTOMATIC_LEVEL, ALL_CIRCUITS_OPEN_LEVEL, type DegraderState, type Signal, type Circuit } from './degrader.js';
export { windowStats, p95, type Sample, type WindowStats } from './window.js';
export { createLoop, type DegraderLoop, type LoopDeps } from './loop.js';
export { asDegradeState, readDegrade, watchOverride } from './record.js';
export { startDegrader, type DegraderOptions } from './start.js';
