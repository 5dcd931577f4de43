import { createLogger } from '@sluice/telemetry';
import { createDb } from './db.js';
import { ledgerScenario } from './ledger.scenario.js';
import { createTestDatabase, pgAdmin } from './db.fixtures.js';

ledgerScenario(
  'Postgres',
  async () => {
    const { name, url } = await createTestDatabase('test');
    const db = createDb({ databaseUrl: url, log: createLogger('ledger-test', 'silent') });
    return {
      db,
      async disconnect() {
        await pgAdmin(`select pg_terminate_backend(pid) from pg_stat_activity where datname = '${name}'`);
      },
      async drop() {
        await db.destroy();
        await pgAdmin(`drop database if exists ${name} with (force)`);
      },
    };
  },
  { canDisconnect: true },
);
