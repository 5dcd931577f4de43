import type { SimOptions } from './types.js';

const NUMERIC: ReadonlyArray<readonly [string, keyof SimOptions]> = [
  ['SIM_PORT', 'port'],
  ['SIM_LATENCY_MS', 'latencyMs'],
  ['SIM_TOKEN_LATENCY_MS', 'tokenLatencyMs'],
  ['SIM_RPM', 'requestsPerMinute'],
  ['SIM_TPM', 'tokensPerMinute'],
  ['SIM_BURST_SECONDS', 'burstSeconds'],
  ['SIM_ERROR_RATE', 'errorRate'],
  ['SIM_TIMEOUT_RATE', 'timeoutRate'],
  ['SIM_CONTEXT_WINDOW', 'contextWindow'],
  ['SIM_BATCH_DELAY_MS', 'batchDelayMs'],
  ['SIM_BATCH_WINDOW_MS', 'batchWindowMs'],
];

/** Default port of the standalone simulator. */
export const DEFAULT_PORT = 8090;

/**
 * Simulator options from environment variables. Empty values are ignored;
 * malformed numbers throw, since a silently ignored SIM_RPM would make a
 * benchmark measure the wrong thing. Range checks are left to startSim.
 */
export function optionsFromEnv(env: NodeJS.ProcessEnv): SimOptions {
  const opts: Record<string, unknown> = { port: DEFAULT_PORT };
  for (const [name, key] of NUMERIC) {
    const raw = env[name]?.trim();
    if (raw === undefined || raw === '') continue;
    const n = Number(raw);
    if (!Number.isFinite(n)) throw new RangeError(`${name} must be a number, got '${raw}'`);
    opts[key] = n;
  }
  const host = env.SIM_HOST?.trim();
  if (host) opts.host = host;
  const models = env.SIM_MODELS?.split(',')
    .map((m) => m.trim())
    .filter((m) => m !== '');
  if (models && models.length > 0) opts.models = models;
  const windows = env.SIM_CONTEXT_WINDOWS?.split(',')
    .map((w) => w.trim())
    .filter((w) => w !== '');
  if (windows && windows.length > 0) {
    const map: Record<string, number> = {};
    for (const entry of windows) {
      const eq = entry.lastIndexOf('=');
      const n = Number(entry.slice(eq + 1).trim());
      if (eq <= 0 || !Number.isFinite(n)) throw new RangeError(`SIM_CONTEXT_WINDOWS entries must be model=tokens, got '${entry}'`);
      map[entry.slice(0, eq).trim()] = n;
    }
    opts.contextWindows = map;
  }
  return opts;
}
