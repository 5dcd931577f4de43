import { sql, type Kysely } from 'kysely';

// Frozen: change the schema with a new migration, never by editing this one.
// Issue 11: budget spend. A request's reservation is kept from its chat.admitted until its
// terminal event settles it; each budget window's counter sums what its requests cost; crossed
// alert thresholds wait in an outbox until they are published.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('budget_reservations')
    .addColumn('request_id', 'text', (c) => c.primaryKey())
    .addColumn('tenant', 'text', (c) => c.notNull())
    .addColumn('counters', 'jsonb', (c) => c.notNull())
    .addColumn('reserved_nanos', 'bigint', (c) => c.notNull())
    .addColumn('admitted_seq', 'bigint', (c) => c.notNull())
    .addColumn('settled_seq', 'bigint')
    .addColumn('cost_usd', 'numeric')
    .execute();
  // the open ones are the requests in flight
  await db.schema.createIndex('budget_reservations_open').on('budget_reservations').column('admitted_seq').where(sql.ref('settled_seq'), 'is', null).execute();

  await db.schema
    .createTable('budget_counters')
    .addColumn('counter', 'text', (c) => c.primaryKey())
    .addColumn('budget_key', 'text', (c) => c.notNull())
    .addColumn('window_id', 'text', (c) => c.notNull())
    .addColumn('tenant', 'text', (c) => c.notNull())
    .addColumn('budget', 'jsonb')
    .addColumn('spent_usd', 'numeric', (c) => c.notNull().defaultTo(0))
    .addColumn('spent_nanos', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('settled_nanos', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('requests', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('alerted', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('updated_seq', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('budget_counters_tenant').on('budget_counters').columns(['tenant', 'window_id']).execute();

  await db.schema
    .createTable('budget_alerts')
    .addColumn('alert_id', 'text', (c) => c.primaryKey())
    .addColumn('tenant', 'text', (c) => c.notNull())
    .addColumn('counter', 'text', (c) => c.notNull())
    .addColumn('threshold', 'double precision', (c) => c.notNull())
    .addColumn('crossed_seq', 'bigint', (c) => c.notNull())
    .addColumn('event', 'jsonb', (c) => c.notNull())
    .addColumn('sent_at', 'timestamptz')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('budget_alerts').execute();
  await db.schema.dropTable('budget_counters').execute();
  await db.schema.dropTable('budget_reservations').execute();
}
