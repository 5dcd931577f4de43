import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createLogger } from '@sluice/telemetry';
import { createDb } from './db.js';
import { ledgerScenario } from './ledger.scenario.js';

// the test Postgres, as README.md (Test it) says: an admin URL; each run makes a database of its own
const ADMIN_URL = process.env.SLUICE_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

async function admin(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

ledgerScenario(
  'Postgres',
  async () => {
    const name = `ledger_test_${randomBytes(6).toString('hex')}`;
    await admin(`create database ${name}`);
    const url = new URL(ADMIN_URL);
    url.pathname = `/${name}`;
    const db = createDb({ databaseUrl: url.toString(), log: createLogger('ledger-test', 'silent') });
    return {
      db,
      async disconnect() {
        await admin(`select pg_terminate_backend(pid) from pg_stat_activity where datname = '${name}'`);
      },
      async drop() {
        await db.destroy();
        await admin(`drop database if exists ${name} with (force)`);
      },
    };
  },
  { canDisconnect: true },
);
