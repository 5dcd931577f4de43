import { sql, type Kysely } from 'kysely';

// Frozen: change the schema with a new migration, never by editing this one.
// Issue 15: the stage that answers records the price it billed at on the event, so a rebuild bills
// the same; a request's row says whether its bill used that price (`event`) or the live config's
// because its event carried none (`config`: events from before prices were recorded). Rows from
// before are null.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('requests')
    .addColumn('price_source', 'text', (col) => col.check(sql`price_source in ('event', 'config')`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  // the column's check constraint goes with it
  await db.schema.alterTable('requests').dropColumn('price_source').execute();
}
