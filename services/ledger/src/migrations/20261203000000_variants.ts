import { sql, type Kysely } from 'kysely';

// Frozen: change the schema with a new migration, never by editing this one.
// Issue 13: a request that a canary matched keeps the canary's id and the variant it took (set by
// the router on chat.routed, carried to the terminal events), so the ledger reports per variant
// and its guard compares a variant's recent error rate with the baseline's. Rows from before are
// in no canary (null). The partial index serves the guard's query (one canary's rows finished in
// the last window) and the report's, and costs nothing for the requests no canary matched.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('requests').addColumn('canary', 'text').addColumn('variant', 'text').execute();
  await sql`create index requests_canary_finished on requests (canary, finished_at) where canary is not null`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index requests_canary_finished`.execute(db);
  await db.schema.alterTable('requests').dropColumn('variant').dropColumn('canary').execute();
}
