import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { expect } from 'vitest';
import OpenAI from 'openai';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Subjects, Topology } from '@sluice/contracts';
import type { Bus } from '@sluice/bus';
import { freePort } from '@sluice/bus/nats-server';
import { eventually } from '@sluice/bus/testing';
import { appUser, OPERATOR_USER, ROOT, startStack, type AuthNats, type Stack, type StackOptions } from '@sluice/scripts/stack';

export const DEV_KEY = 'sk-e2e-dev-key';
/** The ledger's admin key in e2e stacks (hashed into the config's `admin.keySha256`). */
export const ADMIN_KEY = 'sk-e2e-admin-key';
/** The test Postgres (README.md, Test it): an admin URL; each stack makes a database of its own. */
const ADMIN_PG = process.env.SLUICE_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

/** The shipped config, as `npm start` loads it. */
export function defaultConfig(): Record<string, any> {
  return JSON.parse(readFileSync(join(ROOT, 'config', 'sluice.json'), 'utf8'));
}

export interface E2eStack extends Stack {
  /**
   * The tests' own connection. On a stack with NATS users it is the operator's, with tenant
   * `dev`'s inbox prefix: the NATS door answers there only on the asking tenant's inbox
   * (docs/nats-security.md), so `dev`'s requests work on it and other tenants' need {@link natsFor}.
   */
  nc: NatsConnection;
  /** JetStream on `nc` (listing parked events, reading the stream) without a connection of its own. */
  bus: Bus;
  /**
   * A connection for `tenant`'s applications: on a stack with NATS users, as `app-<tenant>` with
   * its inbox prefix (pass the same `inboxPrefix` to SluiceClient for `stream`); without users, `nc`.
   * Closed with the stack.
   */
  natsFor(tenant: string): Promise<NatsConnection>;
  openai(key?: string): OpenAI;
  /** Waits until the ledger has projected every event in the stream. */
  ledgerCaughtUp(timeoutMs?: number): Promise<void>;
  /** Waits until every durable consumer of the event stream has nothing pending or unacked. */
  consumersDrained(timeoutMs?: number): Promise<void>;
  /** GETs a ledger path as the admin (or with `key`); throws with the status and body on an error. */
  ledger<T = any>(path: string, key?: string): Promise<T>;
  logs: string[];
  close(): Promise<void>;
}

/** Creates a database of its own on the local Postgres; returns its URL and a drop function. */
async function createDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `sluice_e2e_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  const admin = new pg.Client({ connectionString: ADMIN_PG });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(ADMIN_PG);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: ADMIN_PG });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/**
 * The real stack as `npm start` runs it (every service its own supervised process), on a
 * private nats-server, free ports and a temp data dir, so e2e files never share state.
 */
export async function startE2eStack(opts: Partial<StackOptions> & { postgres?: boolean } = {}): Promise<E2eStack> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sluice-e2e-'));
  // the ledger on a database of its own on the test Postgres unless a file asks for PGlite
  // (`postgres: false`): PGlite's start costs a stack ~3.5 s (WASM), and the ledger's PGlite path
  // has its own int spec and is what `npm start` runs
  const db = (opts.postgres ?? true) ? await createDatabase() : undefined;
  const logs: string[] = [];
  const stack = await startStack({
    dataDir,
    privateNatsPort: await freePort(),
    ingressPort: await freePort(),
    ledgerPort: await freePort(),
    devKey: DEV_KEY,
    adminKey: ADMIN_KEY,
    config: defaultConfig(),
    // SLUICE_E2E_NATS_AUTH=1 runs every stack with Sluice's NATS users and rights (docs/nats-security.md);
    // the e2e project sets it unless it is 0 (vitest.config.ts), the load, chaos and fuzz suites do not
    natsAuth: process.env.SLUICE_E2E_NATS_AUTH === '1',
    // the services' TypeScript through tsx, so `npm test` needs no build
    entries: 'source',
    ...(db ? { databaseUrl: db.url } : {}),
    // metrics cost every process ~150 ms and ~8 MB at start: on only where a file scrapes them
    // (trace.e2e.spec.ts asks for a /metrics port, and so runs every service with metrics on)
    env: { LOG_LEVEL: 'info', ...(opts.metricsPorts ? {} : { SLUICE_METRICS: 'off' }), ...opts.env },
    onLine: (service, line) => {
      logs.push(`[${service}] ${line}`);
      if (logs.length > 5000) logs.splice(0, 1000);
      if (process.env.SLUICE_E2E_VERBOSE) process.stdout.write(`[${service}] ${line}\n`);
    },
    ...opts,
  });
  // the tests' own connection (to any node of a cluster): the operator's, when the stack's nats-server has users
  const nc = await connect({
    servers: stack.natsUrl.split(','),
    ...(stack.natsPasswords ? { user: OPERATOR_USER, pass: stack.natsPasswords[OPERATOR_USER] ?? '', inboxPrefix: Subjects.inbox('dev') } : {}),
  });
  const jsm = await jetstreamManager(nc);
  const apps = new Map<string, Promise<NatsConnection>>();
  const natsFor = (tenant: string): Promise<NatsConnection> => {
    const passwords = stack.natsPasswords;
    if (!passwords) return Promise.resolve(nc);
    let app = apps.get(tenant);
    if (!app) {
      const user = appUser(tenant);
      app = connect({ servers: stack.natsUrl.split(','), user, pass: passwords[user] ?? '', inboxPrefix: Subjects.inbox(tenant) });
      apps.set(tenant, app);
    }
    return app;
  };
  const ledger = async <T = any>(path: string, key = ADMIN_KEY): Promise<T> => {
    const res = await fetch(`${stack.ledgerUrl}${path}`, { headers: { authorization: `Bearer ${key}` } });
    const body = (await res.json()) as T;
    if (!res.ok) throw Object.assign(new Error(`ledger ${path}: ${res.status} ${JSON.stringify(body)}`), { status: res.status, body });
    return body;
  };
  return {
    ...stack,
    // restartNats() replaces the stack's handle; a spread copy would keep the dead one
    get nats() {
      return stack.nats;
    },
    nc,
    bus: { nc, js: jetstream(nc), jsm },
    natsFor,
    logs,
    ledger,
    openai: (key = DEV_KEY) => new OpenAI({ baseURL: `${stack.ingressUrl}/v1`, apiKey: key, maxRetries: 0, timeout: 30_000 }),
    async ledgerCaughtUp(timeoutMs = 30_000) {
      await eventually(async () => {
        const last = (await jsm.streams.info(Topology.stream.name)).state.last_seq;
        const pos = await ledger<{ seq: number }>('/v1/ledger/position');
        if (pos.seq < last) throw new Error(`ledger at ${pos.seq}, stream at ${last}`);
      }, timeoutMs);
    },
    async consumersDrained(timeoutMs = 30_000) {
      await eventually(async () => {
        const behind: string[] = [];
        const lastSeq = (await jsm.streams.info(Topology.stream.name)).state.last_seq;
        for await (const c of jsm.consumers.list(Topology.stream.name)) {
          // pending+in flight, and where the consumer's sequences stand against the stream's last
          // (on a cluster whose replicas number the stream differently they may point past it)
          const at = `delivered ${c.delivered.stream_seq}, ack floor ${c.ack_floor.stream_seq}, stream last ${lastSeq}`;
          if (c.config.durable_name && (c.num_pending > 0 || c.num_ack_pending > 0)) behind.push(`${c.name}: ${c.num_pending}+${c.num_ack_pending} (${at})`);
        }
        expect(behind).toEqual([]);
      }, timeoutMs);
    },
    async close() {
      for (const app of apps.values()) await (await app.catch(() => undefined))?.close();
      await nc.close();
      await stack.stop();
      await db?.drop();
      // with NATS users, a right a service lacked fails the file (it may not have failed a test)
      const denied = stack.natsPasswords ? refusedByNats(stack.nats as AuthNats | undefined) : [];
      rmSync(dataDir, { recursive: true, force: true });
      if (denied.length > 0) throw new Error(`nats-server refused rights the stack used; add them in scripts/nats-auth.ts:\n${denied.join('\n')}`);
    },
  };
}

/** The nats-server log's refusals of a stack's own users (docs/nats-security.md). */
function refusedByNats(nats: AuthNats | undefined): string[] {
  if (!nats) return [];
  return readFileSync(nats.logPath, 'utf8')
    .split('\n')
    .filter((l) => /(Publish|Subscription) Violation/.test(l));
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One request an upstream was sent through a {@link startRecorder} proxy. */
export interface UpstreamCall {
  method: string;
  /** Path and query, e.g. `/v1/chat/completions`. */
  path: string;
  /** The JSON body as sent (undefined for an empty or non-JSON body). */
  body: any;
}

export interface Recorder {
  /** Base URL to configure as a deployment's `baseUrl` (same path as the target's). */
  url: string;
  calls: UpstreamCall[];
  close(): Promise<void>;
}

/**
 * An HTTP proxy in front of an upstream (a simulator) that records every request it forwards,
 * so a test sees what Sluice sent upstream: a field passed through, not rewritten. A caller
 * that closes its connection early closes the upstream one too, so the simulator still sees an
 * abort as it would without the proxy.
 */
export async function startRecorder(targetUrl: string): Promise<Recorder> {
  const target = new URL(targetUrl);
  const calls: UpstreamCall[] = [];
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(parts);
      let body: unknown;
      try {
        body = raw.length > 0 ? JSON.parse(raw.toString('utf8')) : undefined;
      } catch {
        body = undefined;
      }
      calls.push({ method: req.method ?? 'GET', path: req.url ?? '/', body });
      const up = httpRequest(new URL(req.url ?? '/', target.origin), { method: req.method, headers: { ...req.headers, host: target.host } }, (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      });
      up.on('error', () => res.destroy());
      res.on('close', () => {
        if (!res.writableFinished) up.destroy();
      });
      up.end(raw);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${target.pathname}`,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
