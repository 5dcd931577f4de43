import { sql, type Kysely } from 'kysely';

// Frozen: change the schema with a new migration, never by editing this one.
// Issue 13: a request held at degrade level 4 (maintenance) is `held` until it is answered.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('requests').dropConstraint('requests_outcome').execute();
  await db.schema
    .alterTable('requests')
    .addCheckConstraint('requests_outcome', sql`outcome in ('pending', 'held', 'completed', 'cached', 'throttled', 'rejected', 'shed', 'failed', 'cancelled')`)
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('requests').dropConstraint('requests_outcome').execute();
  await db.schema
    .alterTable('requests')
    .addCheckConstraint('requests_outcome', sql`outcome in ('pending', 'completed', 'cached', 'throttled', 'rejected', 'shed', 'failed', 'cancelled')`)
    .execute();
}
