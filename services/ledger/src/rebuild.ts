import { resolve } from 'node:path';
import { connectBus } from '@sluice/bus';
import { createLogger } from '@sluice/telemetry';
import { createDb } from './db.js';
import { migrate } from './migrate.js';
import { truncateProjections } from './store.js';
import { LEDGER_POSITION, resetLedgerConsumer } from './consumer.js';

// `npm run ledger -- rebuild` (or `npm run -w @sluice/ledger rebuild`): empties the projections and
// recreates the ledger's durable consumer at the start of the stream, so the running ledger (or the
// next one to start) projects every event again. Each answer is billed at the price recorded on its
// event, so the rebuilt costs, budgets and SLOs equal the ones before whatever the config's prices
// are now; only events without a recorded price are billed at today's config (`configPriced` in
// /v1/costs). npm runs workspace scripts in the package folder; INIT_CWD is where the command was
// typed, which is where the services keep `.sluice`. Exit status: 0 done, 1 failed, 2 bad usage.
const USAGE = 'usage: npm run ledger -- rebuild';
const command = process.argv[2] ?? 'rebuild';
if (command !== 'rebuild' || process.argv.length > 3) {
  process.stderr.write(`${USAGE}\n`);
  process.exit(2);
}

const env = process.env;
const log = createLogger('ledger-rebuild');
const dataDir = resolve(env.INIT_CWD ?? process.cwd(), env.SLUICE_DATA_DIR ?? '.sluice');
const db = createDb({ databaseUrl: env.DATABASE_URL, dataDir, log });
try {
  await migrate(db);
  // connected first: a NATS that cannot be reached leaves the projections as they were
  const bus = await connectBus(env.NATS_URL ?? 'nats://127.0.0.1:4222', 'sluice-ledger-rebuild', log);
  await truncateProjections(db, LEDGER_POSITION);
  await resetLedgerConsumer(bus.jsm);
  await bus.nc.drain();
  log.info({ database: env.DATABASE_URL ? 'postgres' : dataDir }, 'projections emptied; the ledger replays the stream from its first event');
} finally {
  await db.destroy();
}
