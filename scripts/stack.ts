import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connectBus, ensureTopology, putConfig, putDegrade, type Bus } from '@sluice/bus';
import { natsAnswers, natsServerOnPath, startNats, type LocalNats } from '@sluice/bus/nats-server';
import { hashKey, interpolateEnv, type DegradeState, type ServiceName, type SluiceConfig } from '@sluice/contracts';
import { startSim, type Sim, type SimOptions } from '@sluice/openai-sim';
import { Supervised, type ServiceEntries } from './supervisor.js';
import { OPERATOR_USER } from './nats-auth.js';
import { startAuthNats } from './nats-auth-server.js';

/** For tests and tools that connect to a stack started with `natsAuth` (the users are nats-auth.ts's). */
export { appUser, OPERATOR_USER, tenantInboxPrefix } from './nats-auth.js';
export type { AuthNats } from './nats-auth-server.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The ledger's admin key `npm start` provisions when SLUICE_ADMIN_KEY is not set: for a laptop, never a deployment. */
export const DEFAULT_ADMIN_KEY = 'sk-sluice-admin';

/**
 * `/metrics` ports of the services without an HTTP port of their own (SLUICE_METRICS_PORT), as
 * `npm start` runs them: ingress and the ledger serve `/metrics` on their HTTP ports.
 */
export const DEFAULT_METRICS_PORTS: Readonly<Partial<Record<ServiceName, number>>> = {
  router: 9471,
  cache: 9472,
  limiter: 9473,
  invoker: 9474,
  degrader: 9475,
};

/** SLUICE_METRICS_PORT of a service's `replica`-th process (from 0): its port, + 10 per replica after the first; 0 (none) when it has none. */
export function metricsPortOf(ports: Partial<Record<ServiceName, number>>, name: ServiceName, replica: number): number {
  const port = ports[name];
  return port ? port + 10 * replica : 0;
}

/** Every service, in the order they are started. */
export const ALL_SERVICES: readonly ServiceName[] = ['ledger', 'degrader', 'invoker', 'router', 'cache', 'limiter', 'ingress'];

export interface StackOptions {
  /** Where local state lives (nats store, PGlite). */
  dataDir: string;
  /**
   * NATS to use, or a cluster's nodes comma-separated (`nats://h1:4222,nats://h2:4222`); when none
   * answers and nats-server is on PATH, one is started on its port.
   */
  natsUrl?: string;
  /**
   * Replicas of the streams and buckets when the stack creates them (SLUICE_STREAM_REPLICAS for
   * the services; default 1): 3 on a three-node cluster. An existing stream keeps its own.
   */
  streamReplicas?: number;
  /** Always start a private nats-server on this port (tests). */
  privateNatsPort?: number;
  /**
   * Start the stack's own nats-server with Sluice's users and rights (docs/nats-security.md):
   * a user per service and per tenant, passwords under `<dataDir>/credentials`, each service
   * given its own. Needs a nats-server the stack starts (`privateNatsPort`, or none answering).
   */
  natsAuth?: boolean;
  databaseUrl?: string;
  host?: string;
  ingressPort: number;
  ledgerPort: number;
  /** Upstream base URL; when absent the simulator is started with `sim` options. */
  upstreamUrl?: string;
  sim?: SimOptions;
  /** Raw config (before `${ENV}` interpolation). */
  config: unknown;
  /** Tenant key of the dev tenant, hashed into `${SLUICE_DEV_KEY_SHA256}`. */
  devKey: string;
  /** The ledger's admin key (admin API, every tenant's data), hashed into `${SLUICE_ADMIN_KEY_SHA256}`; default `sk-sluice-admin`. */
  adminKey?: string;
  services?: readonly ServiceName[];
  /**
   * Processes per service (default 1): replicas share the service's durable consumers, so each
   * message goes to one of them (the bench compares two invokers and limiters against one).
   */
  replicas?: Partial<Record<ServiceName, number>>;
  /**
   * `compiled` (the default, as `npm start` and the bench run them): each service's
   * services/<name>/dist/main.js, so `turbo run build` must have run. `source`: src/main.ts
   * through tsx, no build needed (the end-to-end tests).
   */
  entries?: ServiceEntries;
  /**
   * Per service, the port of its `/metrics` server (SLUICE_METRICS_PORT; 0 or absent: none). A
   * second replica gets the port + 10, a third + 20. Default: DEFAULT_METRICS_PORTS with
   * `compiled` entries (`npm start`, the bench), none with `source` ones (the tests, whose
   * stacks would collide on fixed ports).
   */
  metricsPorts?: Partial<Record<ServiceName, number>>;
  /** Extra environment for the services (and for config interpolation). */
  env?: NodeJS.ProcessEnv;
  /**
   * Environment of one process only, over `env`: replicas of ingress and the ledger each need
   * an HTTP port of their own (SLUICE_INGRESS_PORT, SLUICE_LEDGER_PORT), as behind a load balancer.
   */
  replicaEnv?: (name: ServiceName, replica: number) => NodeJS.ProcessEnv;
  onLine?: (service: string, line: string) => void;
  onExit?: (service: string, code: number | null, signal: NodeJS.Signals | null, restarting: boolean) => void;
}

export interface Stack {
  natsUrl: string;
  ingressUrl: string;
  ledgerUrl: string;
  /** `http://<host>:<port>/metrics` of each service's first process that serves one (ingress and the ledger: on their HTTP ports). */
  metricsUrls: Partial<Record<ServiceName, string>>;
  /** The ledger's admin key (`Authorization: Bearer <adminKey>` on its API). */
  adminKey: string;
  sim?: Sim;
  nats?: LocalNats;
  /** With `natsAuth`: every NATS user's password, by user (`operator`, the services, `app-<tenant>`). */
  natsPasswords?: Readonly<Record<string, string>>;
  config: SluiceConfig;
  /** The first process of each service. */
  services: Map<ServiceName, Supervised>;
  /** Every process of each service, the first included (more than one where `replicas` asked). */
  replicas: Map<ServiceName, Supervised[]>;
  /** Writes a new config to the control bucket (interpolated and validated). */
  applyConfig(raw: unknown): Promise<SluiceConfig>;
  /** Writes the degrade state (an operator override) to the control bucket. */
  applyDegrade(state: DegradeState): Promise<void>;
  /**
   * Stops the stack's own nats-server (SIGTERM, waits for it to exit) and starts it again on the
   * same port and store, keeping `nats` current; services reconnect by themselves. Throws when
   * the stack uses a NATS it did not start.
   */
  restartNats(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts the whole stack on one machine: NATS (existing or local), the simulator unless an
 * upstream is given, the config in the control bucket, and each service as its own supervised
 * process. Used by `npm start` and by the end-to-end tests.
 */
export async function startStack(opts: StackOptions): Promise<Stack> {
  const entries = opts.entries ?? 'compiled';
  const serviceNames = opts.services ?? ALL_SERVICES;
  const entryOf = (name: ServiceName) => join(ROOT, 'services', name, ...(entries === 'compiled' ? ['dist', 'main.js'] : ['src', 'main.ts']));
  const missing = serviceNames.filter((name) => !existsSync(entryOf(name)));
  if (missing.length > 0) throw new Error(`${missing.join(', ')}: no ${entryOf(missing[0]!)}; run \`npx turbo run build\` first`);
  mkdirSync(opts.dataDir, { recursive: true });
  let nats: LocalNats | undefined;
  let natsPasswords: Readonly<Record<string, string>> | undefined;
  let natsUrl = opts.natsUrl ?? 'nats://127.0.0.1:4222';
  const natsStore = join(opts.dataDir, 'nats');
  const tenants = tenantIds(opts.config);
  const startOwnNats = async (port: number) => {
    if (!opts.natsAuth) return startNats(natsStore, port);
    const started = await startAuthNats({ dir: opts.dataDir, port, tenants });
    natsPasswords = started.passwords;
    return started;
  };
  if (opts.privateNatsPort !== undefined) {
    nats = await startOwnNats(opts.privateNatsPort);
    natsUrl = nats.url;
  } else if (!(await natsAnswers(natsUrl))) {
    const port = Number(new URL(natsUrl.replace(/^nats:/, 'http:')).port || 4222);
    if (!natsServerOnPath()) throw new Error(`no NATS answers at ${natsUrl} and nats-server is not on PATH (apt-get install nats-server)`);
    nats = await startOwnNats(port);
  } else if (opts.natsAuth) {
    throw new Error(
      `natsAuth: a NATS already answers at ${natsUrl}; the stack can only secure a nats-server it starts ` +
        `(stop that one, set NATS_URL to a free port for the stack's own, or SLUICE_NATS_AUTH=0 for npm start to use it without users)`,
    );
  }
  const sim = opts.upstreamUrl ? undefined : await startSim(opts.sim ?? {});
  const upstreamUrl = opts.upstreamUrl ?? sim!.url;
  const host = opts.host ?? '127.0.0.1';
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...opts.env,
    NATS_URL: natsUrl,
    SLUICE_HOST: host,
    SLUICE_INGRESS_PORT: String(opts.ingressPort),
    SLUICE_LEDGER_PORT: String(opts.ledgerPort),
    SLUICE_DATA_DIR: opts.dataDir,
    SLUICE_UPSTREAM_URL: upstreamUrl,
    SLUICE_DEV_KEY_SHA256: hashKey(opts.devKey),
    SLUICE_ADMIN_KEY_SHA256: hashKey(opts.adminKey ?? DEFAULT_ADMIN_KEY),
    ...(opts.streamReplicas ? { SLUICE_STREAM_REPLICAS: String(opts.streamReplicas) } : {}),
    // ingress then takes a NATS request's reply subject only under its tenant's inbox (no `_INBOX.`)
    ...(natsPasswords ? { SLUICE_NATS_USERS: '1' } : {}),
  };
  // the services get the hashes only
  delete env.SLUICE_DEV_KEY;
  delete env.SLUICE_ADMIN_KEY;
  if (opts.databaseUrl) env.DATABASE_URL = opts.databaseUrl;
  else delete env.DATABASE_URL;

  const bus = natsPasswords ? await connectOperator(natsUrl, natsPasswords) : await connectBus(natsUrl, 'sluice-stack');
  const buckets = await ensureTopology(bus, { replicas: opts.streamReplicas ?? Number(env.SLUICE_STREAM_REPLICAS ?? 1) });
  const applyConfig = (raw: unknown) => putConfig(buckets, interpolateEnv(raw, env));
  const config = await applyConfig(opts.config);

  const metricsPorts = opts.metricsPorts ?? (entries === 'compiled' ? DEFAULT_METRICS_PORTS : {});
  const replicas = new Map<ServiceName, Supervised[]>();
  for (const name of serviceNames) {
    const all = Array.from({ length: opts.replicas?.[name] ?? 1 }, (_, i) => {
      const metricsPort = metricsPortOf(metricsPorts, name, i);
      const s = new Supervised({
        name,
        entry: entryOf(name),
        entries,
        cwd: ROOT,
        env: {
          ...env,
          OTEL_SERVICE_NAME: `sluice-${name}`,
          SLUICE_METRICS_PORT: String(metricsPort),
          // each service with its own user and only its own password
          ...(natsPasswords ? { NATS_USER: name, NATS_PASSWORD: natsPasswords[name] } : {}),
          ...opts.replicaEnv?.(name, i),
        },
        restart: true,
        onLine: opts.onLine ?? (() => undefined),
        onExit: opts.onExit ?? (() => undefined),
      });
      s.start();
      return s;
    });
    replicas.set(name, all);
  }
  const services = new Map([...replicas].map(([name, all]) => [name, all[0]!]));
  const everyProcess = () => [...replicas.values()].flat();
  try {
    await Promise.all(everyProcess().map((s) => s.whenReady(90_000)));
  } catch (e) {
    await Promise.all(everyProcess().map((s) => s.stop(1000)));
    await bus.nc.close();
    await sim?.close();
    await nats?.stop();
    throw e;
  }
  const stack: Stack = {
    natsUrl,
    ingressUrl: `http://${host}:${opts.ingressPort}`,
    ledgerUrl: `http://${host}:${opts.ledgerPort}`,
    metricsUrls: {
      ...Object.fromEntries(serviceNames.filter((n) => metricsPorts[n]).map((n) => [n, `http://${host}:${metricsPorts[n]}/metrics`])),
      ...(serviceNames.includes('ingress') ? { ingress: `http://${host}:${opts.ingressPort}/metrics` } : {}),
      ...(serviceNames.includes('ledger') ? { ledger: `http://${host}:${opts.ledgerPort}/metrics` } : {}),
    },
    adminKey: opts.adminKey ?? DEFAULT_ADMIN_KEY,
    ...(sim ? { sim } : {}),
    ...(nats ? { nats } : {}),
    ...(natsPasswords ? { natsPasswords } : {}),
    config,
    services,
    replicas,
    applyConfig,
    applyDegrade: (state) => putDegrade(buckets.control, state),
    async restartNats() {
      if (!nats) throw new Error(`the stack did not start its own nats-server (it uses ${natsUrl}); restart that one yourself`);
      await nats.stop();
      nats = await startOwnNats(nats.port);
      stack.nats = nats;
    },
    async stop() {
      await Promise.all(everyProcess().map((s) => s.stop()));
      await bus.nc.close().catch(() => undefined);
      await sim?.close();
      await nats?.stop();
    },
  };
  return stack;
}

/** The tenant ids of a raw config (each gets a NATS user under `natsAuth`, and in deploy/nats/users.conf). */
export function tenantIds(raw: unknown): string[] {
  const tenants = (raw as { tenants?: unknown } | null)?.tenants;
  if (!Array.isArray(tenants)) return [];
  return tenants.flatMap((t) => (typeof (t as { id?: unknown })?.id === 'string' ? [(t as { id: string }).id] : []));
}

/** A connection as the operator (every right): the stack's own, which creates the topology and writes the config, and `npm run config`'s. */
export async function connectOperator(url: string, passwords: Readonly<Record<string, string>>, name = 'sluice-stack'): Promise<Bus> {
  const nc = await connect({
    servers: url.split(','),
    name,
    user: OPERATOR_USER,
    pass: passwords[OPERATOR_USER] ?? '',
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
  });
  return { nc, js: jetstream(nc, { timeout: 10_000 }), jsm: await jetstreamManager(nc, { timeout: 10_000 }) };
}
