import { sql, type Kysely } from 'kysely';

// Frozen: change the schema with a new migration, never by editing this one.
// Issue 9: requests to /v1/responses and /v1/embeddings share the table (their `endpoint`), and a
// client that leaves mid-answer ends its request as `cancelled`, billed for what was streamed.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('requests').addColumn('endpoint', 'text').execute();
  await db.schema.alterTable('requests').dropConstraint('requests_outcome').execute();
  await db.schema
    .alterTable('requests')
    .addCheckConstraint('requests_outcome', sql`outcome in ('pending', 'completed', 'cached', 'throttled', 'rejected', 'shed', 'failed', 'cancelled')`)
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('requests').dropConstraint('requests_outcome').execute();
  await db.schema
    .alterTable('requests')
    .addCheckConstraint('requests_outcome', sql`outcome in ('pending', 'completed', 'cached', 'throttled', 'rejected', 'shed', 'failed')`)
    .execute();
  await db.schema.alterTable('requests').dropColumn('endpoint').execute();
}
