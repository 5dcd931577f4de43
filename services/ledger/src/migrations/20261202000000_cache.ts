import { sql, type Kysely } from 'kysely';

// Frozen: change the schema with a new migration, never by editing this one.
// Issue 12: a cached answer is an exact hit, a semantic hit or a coalesced one (`cache_kind`);
// the tokens a cached answer saved are kept (a hit's own tokens are 0); the embedding calls of the
// semantic cache are billed to the request (`embedding_tokens`, `embedding_usd`). Rows of hits
// projected before this migration were all exact: they are marked so, and their saved tokens are
// read back from their cache.hit timeline rows (which keep the answer's usage), so the table
// reads as a rebuild would write it.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('requests')
    .addColumn('cache_kind', 'text')
    .addColumn('saved_tokens', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('embedding_tokens', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('embedding_usd', 'numeric', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .alterTable('requests')
    .addCheckConstraint('requests_cache_kind', sql`cache_kind in ('exact', 'semantic', 'coalesced')`)
    .execute();
  await sql`
    update requests r set cache_kind = 'exact',
      saved_tokens = coalesce((e.data->'answer'->'usage'->>'prompt_tokens')::int, 0) + coalesce((e.data->'answer'->'usage'->>'completion_tokens')::int, 0)
    from events e
    where r.cache_hit and e.request_id = r.request_id and e.type = 'cache.hit'`.execute(db);
  // a hit whose timeline row is gone still was one
  await sql`update requests set cache_kind = 'exact' where cache_hit and cache_kind is null`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('requests').dropConstraint('requests_cache_kind').execute();
  await db.schema
    .alterTable('requests')
    .dropColumn('embedding_usd')
    .dropColumn('embedding_tokens')
    .dropColumn('saved_tokens')
    .dropColumn('cache_kind')
    .execute();
}
