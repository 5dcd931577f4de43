import { Migrator, type Kysely, type Migration } from 'kysely';
import * as init from './migrations/20251121000000_init.js';
import * as endpointsCancelled from './migrations/20261130000000_endpoints_cancelled.js';
import * as budgets from './migrations/20261201000000_budgets.js';
import * as cache from './migrations/20261202000000_cache.js';
import * as variants from './migrations/20261203000000_variants.js';
import * as held from './migrations/20261204000000_held.js';
import * as priceSource from './migrations/20261205000000_price_source.js';

// Listed in code rather than read from the folder (FileMigrationProvider): dynamic imports of
// .ts files by path depend on how the process was started (tsx, vitest, a bundle); a list does not.
const migrations: Record<string, Migration> = {
  '20251121000000_init': init,
  '20261130000000_endpoints_cancelled': endpointsCancelled,
  '20261201000000_budgets': budgets,
  '20261202000000_cache': cache,
  '20261203000000_variants': variants,
  '20261204000000_held': held,
  '20261205000000_price_source': priceSource,
};

/** Brings the schema to the latest migration; throws with the failing migration's error. */
export async function migrate(db: Kysely<any>): Promise<void> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error) throw new Error(`ledger migration ${failed?.migrationName ?? ''} failed: ${String((error as Error)?.message ?? error)}`, { cause: error });
}
