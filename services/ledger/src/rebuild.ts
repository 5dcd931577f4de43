import { resolve } from 'node:path';
import { connectBus } from '@sluice/bus';
import { createLogger } from '@sluice/telemetry';
import { createDb } from './db.js';
import { migrate } from './migrate.js';
import { truncateProjections } from './store.js';
import { LEDGER_POSITION, resetLedgerConsumer } from './consumer.js';

// `npm run -w @sluice/ledger rebuild`: empties the projections and recreates the ledger's durable
// consumer at the start of the stream, so the ledger replays every event. npm runs workspace
// scripts in the package folder; INIT_CWD is where the command was typed, which is where the
// services keep `.sluice`.
const env = process.env;
const log = createLogger('ledger-rebuild');
const dataDir = resolve(env.INIT_CWD ?? process.cwd(), env.SLUICE_DATA_DIR ?? '.sluice');
const db = createDb({ databaseUrl: env.DATABASE_URL, dataDir, log });
try {
  await migrate(db);
  await truncateProjections(db, LEDGER_POSITION);
  const bus = await connectBus(env.NATS_URL ?? 'nats://127.0.0.1:4222', 'sluice-ledger-rebuild', log);
  await resetLedgerConsumer(bus.jsm);
  await bus.nc.drain();
  log.info({ database: env.DATABASE_URL ? 'postgres' : dataDir }, 'projections emptied; the ledger replays the stream from its first event');
} finally {
  await db.destroy();
}
