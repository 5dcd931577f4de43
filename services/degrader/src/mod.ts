export { decide, evolve, initialState, openCircuits, ratioLevel, degradeRecord, MAX_AUTOMATIC_LEVEL, ALL_CIRCUITS_OPEN_LEVEL, type DegraderState, type Signal, type Circuit } from './degrader.js';
export { windowStats, p95, type Sample, type WindowStats } from './window.js';
export { createLoop, type DegraderLoop, type LoopDeps } from './loop.js';
export { openLoop } from './open-loop.js';
export { onCircuitChanged, onInvokeAttempted, onOverride } from './handlers.js';
export { asDegradeState, readDegrade, watchOverride } from './record.js';
