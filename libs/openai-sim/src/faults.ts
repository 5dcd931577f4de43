import type { Faults, SimOptions } from './types.js';

/** What happens to a chat request that passed validation and rate limits. */
export type FaultOutcome = 'none' | 'error' | 'timeout';

const NON_NEGATIVE = ['latencyMs', 'tokenLatencyMs', 'batchDelayMs'] as const;
const RATES = ['errorRate', 'timeoutRate'] as const;
const LIMITS = ['requestsPerMinute', 'tokensPerMinute'] as const;
const KEYS = new Set<string>([...NON_NEGATIVE, ...RATES, ...LIMITS, 'burstSeconds', 'batchWindowMs']);
/** OpenAI's only completion window, `24h`. */
const DAY_MS = 86_400_000;

/** Initial faults from start options; throws on invalid values. */
export function faultsFromOptions(o: SimOptions): Faults {
  const base: Faults = {
    latencyMs: 0,
    tokenLatencyMs: 0,
    errorRate: 0,
    timeoutRate: 0,
    requestsPerMinute: null,
    tokensPerMinute: null,
    burstSeconds: 60,
    batchDelayMs: 0,
    batchWindowMs: DAY_MS,
  };
  const patch: Record<string, unknown> = {};
  for (const k of KEYS) {
    const v = (o as Record<string, unknown>)[k];
    if (v !== undefined) patch[k] = v;
  }
  const r = applyFaultPatch(base, patch);
  if (typeof r === 'string') throw new RangeError(r);
  return r;
}

/**
 * Applies a partial update (the body of POST /admin/faults). Absent keys are
 * kept, `null` clears a rate limit. Returns the new faults, or an error
 * message; unknown keys are rejected so that a typo does not silently do nothing.
 */
export function applyFaultPatch(current: Faults, patch: unknown): Faults | string {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return 'expected a JSON object';
  const p = patch as Record<string, unknown>;
  for (const k of Object.keys(p)) if (!KEYS.has(k)) return `unknown setting '${k}'`;
  const next: Faults = { ...current };
  for (const k of NON_NEGATIVE) {
    const v = p[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) return `'${k}' must be a number >= 0`;
    next[k] = v;
  }
  for (const k of RATES) {
    const v = p[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) return `'${k}' must be a number in [0, 1]`;
    next[k] = v;
  }
  for (const k of LIMITS) {
    const v = p[k];
    if (v === undefined) continue;
    if (v === null) next[k] = null;
    else if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) return `'${k}' must be a number > 0 or null`;
    else next[k] = v;
  }
  const burst = p.burstSeconds;
  if (burst !== undefined) {
    if (typeof burst !== 'number' || !(burst > 0 && burst <= 60)) return `'burstSeconds' must be a number in (0, 60]`;
    next.burstSeconds = burst;
  }
  const window = p.batchWindowMs;
  if (window !== undefined) {
    if (typeof window !== 'number' || !Number.isFinite(window) || window <= 0) return `'batchWindowMs' must be a number > 0`;
    next.batchWindowMs = window;
  }
  return next;
}

/**
 * Maps one uniform draw in [0, 1) to an outcome: the first `errorRate` of the
 * interval fails, the next `timeoutRate` hangs. One draw per request keeps the
 * two rates exclusive and exact in expectation.
 */
export function decideFault(u: number, f: Pick<Faults, 'errorRate' | 'timeoutRate'>): FaultOutcome {
  if (u < f.errorRate) return 'error';
  if (u < f.errorRate + f.timeoutRate) return 'timeout';
  return 'none';
}

/**
 * Seeded PRNG (mulberry32), so a given sequence of requests meets the same
 * faults on every run, which keeps failing benchmarks reproducible.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
