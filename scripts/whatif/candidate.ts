import { readFileSync } from 'node:fs';
import { hashKey, interpolateEnv, parseConfig, type SluiceConfig } from '@sluice/contracts';
import { UsageError, type WhatifArgs } from './args.js';
import type { CandidatePolicy } from './replay.js';

/**
 * Reads a config file as `npm run config -- apply` does (`${ENV}` filled from the environment, the
 * dev and admin key hashes defaulted) and validates it; a file that cannot be read or is not a
 * valid config is a UsageError naming the file and the key that is wrong.
 */
export function readConfigFile(file: string, env: Record<string, string | undefined>): { config: SluiceConfig; whatif: unknown } {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`${file}: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UsageError(`${file}: not a JSON object`);
  const { whatif, ...rest } = raw as Record<string, unknown>;
  const filled = {
    ...env,
    SLUICE_DEV_KEY_SHA256: env.SLUICE_DEV_KEY_SHA256 ?? hashKey(env.SLUICE_DEV_KEY ?? 'sk-sluice-dev'),
    SLUICE_ADMIN_KEY_SHA256: env.SLUICE_ADMIN_KEY_SHA256 ?? hashKey(env.SLUICE_ADMIN_KEY ?? 'sk-sluice-admin'),
    SLUICE_UPSTREAM_URL: env.SLUICE_UPSTREAM_URL ?? 'http://127.0.0.1:8090/v1',
  };
  try {
    return { config: parseConfig(interpolateEnv(rest, filled)), whatif };
  } catch (e) {
    throw new UsageError(`${file}: ${(e as Error).message}`);
  }
}

/**
 * The candidate: a Sluice config, and an optional `whatif` section with the replay's own knobs:
 * `cache` (`on` | `off`: Sluice's config has no switch for the exact cache), `degradeLevel` (0-4:
 * every request routed at it instead of the level it met) and `balance` (overrides `--balance`).
 *
 * @example
 * // candidate.json: { ...a config..., "whatif": { "cache": "off" } }
 * loadCandidate(args, process.env) // { config, cache: 'off', balance: 'recorded' }
 */
export function loadCandidate(args: Pick<WhatifArgs, 'config' | 'balance'>, env: Record<string, string | undefined>): CandidatePolicy {
  const { config, whatif } = readConfigFile(args.config, env);
  const knobs = (whatif ?? {}) as Record<string, unknown>;
  if (typeof knobs !== 'object' || Array.isArray(knobs)) throw new UsageError(`${args.config}: whatif must be an object`);
  for (const k of Object.keys(knobs))
    if (!['cache', 'degradeLevel', 'balance'].includes(k)) throw new UsageError(`${args.config}: whatif.${k} is not a knob (cache, degradeLevel, balance)`);
  const cache = knobs.cache ?? 'on';
  if (cache !== 'on' && cache !== 'off') throw new UsageError(`${args.config}: whatif.cache must be "on" or "off"`);
  const balance = knobs.balance ?? args.balance;
  if (balance !== 'recorded' && balance !== 'drawn') throw new UsageError(`${args.config}: whatif.balance must be "recorded" or "drawn"`);
  const policy: CandidatePolicy = { config, cache, balance };
  if (knobs.degradeLevel !== undefined) {
    const level = knobs.degradeLevel;
    if (typeof level !== 'number' || !Number.isInteger(level) || level < 0 || level > 4)
      throw new UsageError(`${args.config}: whatif.degradeLevel must be 0 to 4`);
    policy.degradeLevel = level;
  }
  return policy;
}
