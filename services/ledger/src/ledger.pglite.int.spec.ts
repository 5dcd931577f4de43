import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDb } from './db.js';
import { ledgerScenario } from './ledger.scenario.js';

ledgerScenario(
  'PGlite',
  async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sluice-ledger-pglite-'));
    const db = createDb({ dataDir });
    return {
      db,
      async drop() {
        await db.destroy();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  },
  { canDisconnect: false },
);
