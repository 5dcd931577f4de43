import { sql, type Kysely } from 'kysely';

// Frozen: change the schema with a new migration, never by editing this one.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('events')
    .addColumn('seq', 'bigint', (c) => c.primaryKey())
    .addColumn('request_id', 'text')
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('tenant', 'text', (c) => c.notNull())
    .addColumn('service', 'text', (c) => c.notNull())
    .addColumn('at', 'timestamptz', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('data', 'jsonb', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('events_request_id').on('events').columns(['request_id', 'seq']).execute();

  await db.schema
    .createTable('requests')
    .addColumn('request_id', 'text', (c) => c.primaryKey())
    .addColumn('tenant', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text')
    .addColumn('feature', 'text')
    .addColumn('requested_model', 'text')
    .addColumn('model', 'text')
    .addColumn('deployment', 'text')
    .addColumn('front_door', 'text')
    .addColumn('stream', 'boolean')
    .addColumn('priority', 'text')
    .addColumn('received_at', 'timestamptz', (c) => c.notNull())
    .addColumn('finished_at', 'timestamptz')
    .addColumn('outcome', 'text', (c) => c.notNull())
    .addColumn('error_code', 'text')
    .addColumn('status_code', 'integer')
    .addColumn('latency_ms', 'integer')
    .addColumn('input_tokens', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('output_tokens', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('cost_usd', 'numeric', (c) => c.notNull().defaultTo(0))
    .addColumn('saved_usd', 'numeric', (c) => c.notNull().defaultTo(0))
    .addColumn('attempts', 'integer')
    .addColumn('cache_hit', 'boolean', (c) => c.notNull().defaultTo(false))
    .addCheckConstraint('requests_outcome', sql`outcome in ('pending', 'completed', 'cached', 'throttled', 'rejected', 'shed', 'failed')`)
    .execute();
  await db.schema.createIndex('requests_received_at').on('requests').column('received_at').execute();
  await db.schema.createIndex('requests_tenant_received_at').on('requests').columns(['tenant', 'received_at']).execute();

  await db.schema
    .createTable('ledger_position')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('ledger_position').execute();
  await db.schema.dropTable('requests').execute();
  await db.schema.dropTable('events').execute();
}
