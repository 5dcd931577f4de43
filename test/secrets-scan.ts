import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';

/** One thing the stack keeps, as text: a log line, a stream message, a database row. */
export interface Kept {
  /** Where it was: `log [ingress]`, `SLUICE_EVENTS #12 sluice.evt.chat.requested.dev`, `pg public.requests`. */
  where: string;
  text: string;
}

/**
 * Every message of every stream on the server, as text: its subject, each header name and value,
 * and its data. KV buckets and object stores are streams (`KV_<bucket>`, `OBJ_<store>`), so this is
 * every key and every value of every bucket, the history a bucket keeps included, and every
 * object's chunks and metadata. Read with an ordered consumer, which leaves no state behind.
 */
export async function streamsKept(nc: NatsConnection): Promise<{ kept: Kept[]; perStream: Map<string, number> }> {
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const kept: Kept[] = [];
  const perStream = new Map<string, number>();
  const decoder = new TextDecoder();
  for await (const info of jsm.streams.list()) {
    const name = info.config.name;
    perStream.set(name, 0);
    if (info.state.messages === 0) continue;
    const messages = await (await js.consumers.get(name)).consume();
    try {
      for await (const m of messages) {
        const headers = m.headers ? [...m.headers.keys()].map((k) => `${k}: ${m.headers!.values(k).join(', ')}`).join('\n') : '';
        kept.push({ where: `${name} #${m.seq} ${m.subject}`, text: `${m.subject}\n${headers}\n${decoder.decode(m.data)}` });
        perStream.set(name, perStream.get(name)! + 1);
        if (m.info.pending === 0) break;
      }
    } finally {
      await messages.close();
    }
  }
  return { kept, perStream };
}

/** Every row of every table outside Postgres's own schemas, each row whole as text (`row::text`: every column, jsonb included). */
export async function databaseKept(url: string): Promise<{ kept: Kept[]; perTable: Map<string, number> }> {
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    const tables = await db.query<{ schema: string; name: string }>(
      `SELECT table_schema AS schema, table_name AS name FROM information_schema.tables
        WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')`,
    );
    const kept: Kept[] = [];
    const perTable = new Map<string, number>();
    for (const { schema, name } of tables.rows) {
      const table = `${schema}.${name}`;
      const rows = await db.query<{ row: string }>(`SELECT t::text AS row FROM "${schema}"."${name}" t`);
      perTable.set(table, rows.rows.length);
      for (const r of rows.rows) kept.push({ where: `pg ${table}`, text: r.row });
    }
    return { kept, perTable };
  } finally {
    await db.end();
  }
}

/**
 * The database URL a process was started with (its `DATABASE_URL`), read from /proc (Linux):
 * the e2e harness makes the ledger's database and does not say its name.
 */
export function databaseUrlOf(pid: number): string {
  const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  const url = env.find((e) => e.startsWith('DATABASE_URL='));
  if (!url) throw new Error(`process ${pid} has no DATABASE_URL`);
  return url.slice('DATABASE_URL='.length);
}

/** Where each needle appears in `kept`: `[needle, where[]]` for those found anywhere. */
export function findIn(kept: readonly Kept[], needles: ReadonlyArray<string | RegExp>): Array<[string, string[]]> {
  const found: Array<[string, string[]]> = [];
  for (const needle of needles) {
    const where = kept.filter((k) => (typeof needle === 'string' ? k.text.includes(needle) : needle.test(k.text))).map((k) => k.where);
    if (where.length > 0) found.push([String(needle), where]);
  }
  return found;
}
