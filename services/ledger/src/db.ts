import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kysely, PostgresDialect, type Dialect } from 'kysely';
import pg from 'pg';
import type { Logger } from '@sluice/telemetry';
import { PGlite } from '@electric-sql/pglite';
import { PGliteDialect } from 'kysely-pglite-dialect';
import type { EventsTable } from './events.table.js';
import type { RequestsTable } from './requests.table.js';
import type { PositionTable } from './position.table.js';
import type { BudgetAlertsTable, BudgetCountersTable, BudgetReservationsTable } from './budgets.table.js';

export interface Database {
  events: EventsTable;
  requests: RequestsTable;
  ledger_position: PositionTable;
  budget_reservations: BudgetReservationsTable;
  budget_counters: BudgetCountersTable;
  budget_alerts: BudgetAlertsTable;
}

export type Db = Kysely<Database>;

export interface DbOptions {
  /** Postgres connection string; without it the ledger uses embedded PGlite. */
  databaseUrl?: string | undefined;
  /** Directory PGlite keeps its files in (`<dataDir>/pglite`). Ignored with a database URL. */
  dataDir?: string;
  /** Told about errors of idle pooled connections (a Postgres restart); they are not fatal. */
  log?: Logger;
}

/**
 * Opens the ledger database: Postgres when a URL is given, else PGlite under `<dataDir>/pglite`
 * (one process at a time may open that directory).
 *
 * @example
 * const db = createDb({ databaseUrl: process.env.DATABASE_URL, dataDir: '.sluice' });
 */
export function createDb(opts: DbOptions): Db {
  let dialect: Dialect;
  if (opts.databaseUrl) {
    const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: 5 });
    // without a listener, an idle connection killed by a Postgres restart crashes the process;
    // the pool replaces it and the projector retries its batch
    pool.on('error', (err) => opts.log?.warn({ code: (err as { code?: string }).code, error: err.message }, 'postgres connection lost'));
    dialect = new PostgresDialect({ pool });
  } else {
    const dir = join(opts.dataDir ?? '.sluice', 'pglite');
    mkdirSync(dir, { recursive: true });
    lockDataDir(dir);
    dialect = new PGliteDialect(new PGlite(dir));
  }
  return new Kysely<Database>({ dialect });
}

const held = new Set<string>();
process.once('exit', () => held.forEach((lock) => rmSync(lock, { force: true })));

/**
 * PGlite is one process's database: a second process opening the same directory (the rebuild
 * script while the ledger runs) would corrupt it. A pid file beside the directory refuses that;
 * a file left by a dead process is taken over.
 */
function lockDataDir(dir: string): void {
  const lock = `${dir}.lock`;
  for (let i = 0; i < 3; i++) {
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
      held.add(lock);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const pid = Number(readFileSync(lock, 'utf8'));
    if (pid === process.pid) return;
    if (pid > 0 && isAlive(pid)) throw new Error(`${dir} is in use by process ${pid}; PGlite allows one process at a time (stop the ledger first)`);
    rmSync(lock, { force: true });
  }
  throw new Error(`could not lock ${dir}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
