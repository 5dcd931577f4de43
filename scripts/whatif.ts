/**
 * `npm run whatif -- --from <time> --to <time> --config candidate.json [--json out.json]`: replays
 * the requests received in the window from the event stream through the candidate config's
 * limits, cache, routing and prices (the services' own decision functions; no model is called)
 * and prints what actually happened against what would have: requests, cost, routing, throttles,
 * cache hits. docs/whatif.md has the approximations. Exit codes: 0 done, 2 bad arguments or
 * candidate, 1 anything else (NATS unreachable...).
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { connectBus } from '@sluice/bus';
import { parseArgs, USAGE, UsageError } from './whatif/args.js';
import { table } from './whatif/report.js';
import { whatif } from './whatif/run.js';

const env = { ...process.env };
try {
  // npm runs a root script in the repository's root; files are named from where the command was typed
  const here = (file: string) => resolve(env.INIT_CWD ?? process.cwd(), file);
  const parsed = parseArgs(process.argv.slice(2), env);
  const args = {
    ...parsed,
    config: here(parsed.config),
    ...(parsed.json ? { json: here(parsed.json) } : {}),
    ...(parsed.baseline ? { baseline: here(parsed.baseline) } : {}),
  };
  const bus = await connectBus(args.nats, 'sluice-whatif');
  try {
    const report = await whatif(args, bus, env);
    process.stdout.write(table(report));
    if (args.json) writeFileSync(args.json, `${JSON.stringify(report, null, 2)}\n`);
  } finally {
    await bus.nc.close();
  }
} catch (e) {
  if (!(e instanceof UsageError)) throw e;
  process.stderr.write(`whatif: ${e.message}\n${USAGE}\n`);
  process.exitCode = 2;
}
