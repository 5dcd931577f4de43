import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { KV } from '@nats-io/kv';
import { decodeJson } from '@sluice/bus';
import type { DegradeState, SluiceConfig } from '@sluice/contracts';

/**
 * The web console (docs/console.md): a page at `/` and its files under `/console/`, plain HTML,
 * CSS and ES modules from `services/ledger/console/` with no build step, and Chart.js from
 * node_modules. The page holds no data and no key: it asks for an admin or tenant read key and
 * reads the ledger's API with it, like any other client. This file also serves the routes the
 * API lacked: who a key is, the live degrade level and the circuits.
 */

/** What the live routes read; absent (a ledger without NATS, tests of the API alone): they answer 404. */
export interface ConsoleLive {
  /** The degrade state in force, as the control bucket's watch last saw it (libs/bus control.ts). */
  degrade: () => DegradeState;
  /** `sluice_circuits`: one record per deployment, written by the invokers (services/invoker/src/circuit-store.ts). */
  circuits: KV;
}

declare module './http.js' {
  interface AppDeps {
    /** The console's live routes' sources (`GET /v1/degrade`, `GET /v1/circuits`); absent: not served. */
    live?: ConsoleLive;
  }
}

/** The package's console folder: the same from `src/` (tsx) and from `dist/` (the build), so the build copies nothing. */
const PAGES_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'console');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
};

/**
 * The pages' own scripts and styles only, and the API on this origin; no inline script or style,
 * no frames. Chart.js sets canvas sizes through the CSSOM, which this allows.
 */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

interface Page {
  type: string;
  body: Buffer;
  /** Chart.js's file is named with its version, so a browser may keep it; the console's own files are checked each load. */
  cacheControl: string;
}

/** Chart.js's self-contained UMD build (`window.Chart`); its ESM build imports a bare specifier a browser cannot resolve without an import map. */
function chartJs(): { path: string; page: Page } {
  // the package exports only its entry points: find its dist folder through the CommonJS one
  const require = createRequire(import.meta.url);
  const dist = dirname(require.resolve('chart.js'));
  const { version } = JSON.parse(readFileSync(join(dist, '..', 'package.json'), 'utf8')) as { version: string };
  return {
    path: `/console/vendor/chart-${version}.umd.min.js`,
    page: { type: TYPES['.js']!, body: readFileSync(join(dist, 'chart.umd.min.js')), cacheControl: 'public, max-age=31536000, immutable' },
  };
}

/** Every page by path, read once at start (a few KiB, and Chart.js's ~200 KiB); `index.html` names Chart.js's file by its version. */
function loadPages(): Map<string, Page> {
  const chart = chartJs();
  const pages = new Map<string, Page>();
  for (const name of readdirSync(PAGES_DIR)) {
    const type = TYPES[extname(name)];
    if (!type) continue;
    let body = readFileSync(join(PAGES_DIR, name));
    if (name === 'index.html') body = Buffer.from(body.toString('utf8').replace('{{chart.js}}', chart.path));
    pages.set(name === 'index.html' ? '/' : `/console/${name}`, { type, body, cacheControl: 'no-cache' });
  }
  pages.set(chart.path, chart.page);
  return pages;
}

/** A deployment's circuit as the console shows it. Times are ISO 8601; null when not set. */
interface CircuitView {
  deployment: string;
  /** `paused`: closed, but its upstream's Retry-After holds every call until `pausedUntil`. */
  state: 'closed' | 'open' | 'half-open' | 'paused';
  /** Consecutive failures while closed; when open, the count that opened it. */
  failures: number;
  openedAt: string | null;
  pausedUntil: string | null;
  /** Whether the deployment is in the live config (a record may outlive its deployment). */
  configured: boolean;
}

interface CircuitRecord {
  state: 'closed' | 'open' | 'half-open';
  failures: number;
  openedAt?: number;
  pausedUntil?: number;
}

const isRecord = (v: unknown): v is CircuitRecord =>
  typeof v === 'object' &&
  v !== null &&
  ['closed', 'open', 'half-open'].includes((v as CircuitRecord).state) &&
  typeof (v as CircuitRecord).failures === 'number';

const iso = (ms: number | undefined) => (ms ? new Date(ms).toISOString() : null);

/**
 * Every configured deployment's circuit, and any other the bucket holds, by name (byte order).
 * A deployment without a record, or with a deleted or unreadable one, is closed (as the invokers
 * take it). One key listing and one read per record: a few deployments, a page refreshing every
 * few seconds.
 */
async function readCircuits(kv: KV, config: SluiceConfig, now: number): Promise<CircuitView[]> {
  // by deployment; undefined: a record that cannot be read, closed as the invokers take it
  const records = new Map<string, CircuitRecord | undefined>();
  for await (const key of await kv.keys()) {
    const e = await kv.get(key);
    if (!e || e.operation !== 'PUT') continue;
    records.set(key, undefined);
    try {
      const record = e.length > 0 ? decodeJson<unknown>(e.value) : undefined;
      if (isRecord(record)) records.set(key, record);
    } catch {
      // unreadable: closed
    }
  }
  const configured = new Set(Object.keys(config.deployments));
  return [...new Set([...configured, ...records.keys()])].sort().map((deployment): CircuitView => {
    const r = records.get(deployment);
    const paused = r?.state === 'closed' && (r.pausedUntil ?? 0) > now;
    return {
      deployment,
      state: paused ? 'paused' : (r?.state ?? 'closed'),
      failures: r?.failures ?? 0,
      openedAt: r && r.state !== 'closed' ? iso(r.openedAt) : null,
      pausedUntil: paused ? iso(r.pausedUntil) : null,
      configured: configured.has(deployment),
    };
  });
}

/** What each degrade level does (docs/degradation.md). */
const LEVELS = ['full service', 'reduced quality', 'cached answers only', 'static answers', 'maintenance: requests held'] as const;

/** The degrade state as the console shows it: the level, its meaning, the operator's override (null: automatic), since when (ISO 8601) and why. */
function degradeView(state: DegradeState) {
  return {
    level: state.level,
    meaning: LEVELS[state.level] ?? 'unknown',
    override: state.override ?? null,
    since: state.since > 0 ? new Date(state.since).toISOString() : null,
    reason: state.reason,
  };
}

/**
 * Mounts the console on the ledger's app: its pages as `public` routes (GET, and HEAD, of the
 * console's own paths; they take no key: the page asks for one), and its live routes, which take
 * keys like any API route: the degrade level any valid key (it is every tenant's service level),
 * the circuits an admin key (deployments are the operator's).
 *
 * @example
 * mountConsole(app, { degrade: () => control.degrade(), circuits: buckets.circuits }, () => config);
 */
export function mountConsole(app: FastifyInstance, live: ConsoleLive | undefined, config: () => SluiceConfig, now: () => number = Date.now): void {
  for (const [path, page] of loadPages()) {
    app.get(path, { config: { public: true } }, async (_request, reply) =>
      reply
        .header('content-type', page.type)
        .header('cache-control', page.cacheControl)
        .header('content-security-policy', CSP)
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        .send(page.body),
    );
  }

  // who the key is, so the page can say so and leave out what a tenant key may not read
  app.get('/v1/principal', { config: { tenantReadable: true } }, async (request) => request.principal);

  if (!live) return;
  app.get('/v1/degrade', { config: { tenantReadable: true } }, async () => degradeView(live.degrade()));
  app.get('/v1/circuits', async () => ({ object: 'list', data: await readCircuits(live.circuits, config(), now()) }));
}
