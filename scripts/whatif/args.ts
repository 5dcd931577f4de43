import type { BalanceMode } from './upstream.js';

/** What `npm run whatif` was asked: the window, the candidate, where to read and write. */
export interface WhatifArgs {
  /** The window, epoch ms: requests received in [from, to). */
  from: number;
  to: number;
  /** The candidate config file (a Sluice config, optionally with a `whatif` section). */
  config: string;
  /** Where to write the report as JSON; unset: only the table on stdout. */
  json?: string;
  /** A config file whose prices bill recorded events that carry no price of their own; unset: the live config in the control bucket. */
  baseline?: string;
  nats: string;
  balance: BalanceMode;
}

/** A mistake in the command line: printed with the usage, exit code 2. */
export class UsageError extends Error {}

export const USAGE = `usage: npm run whatif -- --from <ISO time | epoch ms> --to <ISO time | epoch ms> --config <candidate.json>
                      [--json <out.json>] [--baseline <config.json>] [--nats <url>] [--balance recorded|drawn]
Replays the requests received in [from, to) from the event stream (SLUICE_EVENTS) through the candidate
config's limits, cache, routing and prices, calling no model, and prints actual against candidate (docs/whatif.md).`;

const FLAGS = new Set(['--from', '--to', '--config', '--json', '--baseline', '--nats', '--balance']);

/**
 * Parses the arguments after `--`; throws a UsageError naming the flag that is wrong. Times are ISO
 * 8601 (`2026-11-30T12:00:00Z`, `2026-11-30`) or epoch milliseconds.
 *
 * @example
 * parseArgs(['--from', '2026-11-30', '--to', '2026-12-01', '--config', 'candidate.json'], {})
 * // { from: 1764460800000, to: 1764547200000, config: 'candidate.json', nats: 'nats://127.0.0.1:4222', balance: 'recorded' }
 */
export function parseArgs(argv: readonly string[], env: Record<string, string | undefined>): WhatifArgs {
  const given = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    if (!FLAGS.has(flag)) throw new UsageError(`unknown argument ${flag}`);
    if (value === undefined || value.startsWith('--')) throw new UsageError(`${flag} needs a value`);
    if (given.has(flag)) throw new UsageError(`${flag} is given twice`);
    given.set(flag, value);
  }
  const required = (flag: string) => {
    const v = given.get(flag);
    if (v === undefined) throw new UsageError(`${flag} is required`);
    return v;
  };
  const from = timeOf('--from', required('--from'));
  const to = timeOf('--to', required('--to'));
  if (to <= from) throw new UsageError(`--to (${new Date(to).toISOString()}) must be after --from (${new Date(from).toISOString()})`);
  const balance = given.get('--balance') ?? 'recorded';
  if (balance !== 'recorded' && balance !== 'drawn') throw new UsageError(`--balance must be recorded or drawn, not ${balance}`);
  const args: WhatifArgs = { from, to, config: required('--config'), nats: given.get('--nats') ?? env.NATS_URL ?? 'nats://127.0.0.1:4222', balance };
  const json = given.get('--json');
  const baseline = given.get('--baseline');
  if (json !== undefined) args.json = json;
  if (baseline !== undefined) args.baseline = baseline;
  return args;
}

/** Epoch ms (digits only) or an ISO 8601 date or time. */
function timeOf(flag: string, value: string): number {
  const ms = /^\d+$/.test(value) ? Number(value) : /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : NaN;
  if (!Number.isSafeInteger(ms)) throw new UsageError(`${flag}: ${value} is neither an ISO 8601 time nor epoch milliseconds`);
  return ms;
}
