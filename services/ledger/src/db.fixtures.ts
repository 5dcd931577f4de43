import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createDb, type Db } from './db.js';

// The ledger's int specs' databases, made one way. The test Postgres is the one README.md (Test
// it) names: an admin URL (SLUICE_TEST_PG); each test makes a database of its own on it.

/** The test Postgres's admin URL. */
const TEST_PG_URL = process.env.SLUICE_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Runs one statement as the test Postgres's admin (create and drop databases). */
export async function pgAdmin(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_PG_URL });
  await client.connect();
  await client.query(statement).finally(() => client.end());
}

/** A database of its own on the test Postgres: its name and URL. */
export async function createTestDatabase(label: string): Promise<{ name: string; url: string }> {
  const name = `ledger_${label}_${randomBytes(6).toString('hex')}`;
  await pgAdmin(`create database ${name}`);
  const url = new URL(TEST_PG_URL);
  url.pathname = `/${name}`;
  return { name, url: url.toString() };
}

/**
 * A fresh, empty ledger database and how to drop it: PGlite in a temp directory, or a database of
 * its own on the test Postgres. `label` names the directory or database (letters, digits, `_`).
 */
export async function openTestDb(kind: 'PGlite' | 'Postgres', label: string): Promise<{ db: Db; drop(): Promise<void> }> {
  if (kind === 'PGlite') {
    const dir = mkdtempSync(join(tmpdir(), `sluice-ledger-${label}-`));
    const db = createDb({ dataDir: dir });
    return { db, drop: async () => (await db.destroy(), rmSync(dir, { recursive: true, force: true })) };
  }
  const { name, url } = await createTestDatabase(label);
  const db = createDb({ databaseUrl: url });
  return { db, drop: async () => (await db.destroy(), await pgAdmin(`drop database if exists ${name} with (force)`)) };
}
