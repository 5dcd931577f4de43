/**
 * `npm start`: the whole stack on one machine, on embedded defaults. The npm script builds first
 * (`turbo run build`), and each service runs its compiled dist/main.js; this launcher alone goes
 * through tsx, its @sluice imports resolving to the build as well.
 * NATS: its own nats-server on NATS_URL's port with Sluice's users and rights (docs/nats-security.md),
 * their passwords under .sluice/credentials; it refuses to start when a NATS already answers at a
 * NATS_URL that was set. Without NATS_URL: 4222, or the next free port when 4222 is taken (noted in
 * .sluice/nats.url for `npm run config`). SLUICE_NATS_AUTH=0 runs without users instead: NATS_URL's server
 * (a local one started when none answers). The ledger on DATABASE_URL or PGlite under .sluice/,
 * the simulator as upstream unless OPENAI_API_KEY is set.
 * SLUICE_DEV_KEY (default sk-sluice-dev) is tenant `dev`'s key, SLUICE_ADMIN_KEY (default
 * sk-sluice-admin) the ledger's admin key; the services get only their SHA-256.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createLogger } from '@sluice/telemetry';
import { portFree } from '@sluice/bus/nats-server';
import { credentialsDir, rememberNatsUrl } from './nats-auth-server.js';
import { appUser, DEFAULT_ADMIN_KEY, ROOT, startStack, tenantInboxPrefix } from './stack.js';

const env = process.env;
const log = createLogger('stack');
const configPath = resolve(env.SLUICE_CONFIG ?? join(ROOT, 'config', 'sluice.json'));
const devKey = env.SLUICE_DEV_KEY ?? 'sk-sluice-dev';
const adminKey = env.SLUICE_ADMIN_KEY ?? DEFAULT_ADMIN_KEY;
const useOpenAi = Boolean(env.OPENAI_API_KEY);
const verbose = env.SLUICE_LOG_SERVICES !== '0';
const dataDir = resolve(env.SLUICE_DATA_DIR ?? join(ROOT, '.sluice'));
const natsAuth = natsAuthFrom(env.SLUICE_NATS_AUTH);

/** SLUICE_NATS_AUTH: unset or `1`, NATS with Sluice's users; `0`, without. Anything else stops here, naming the variable. */
function natsAuthFrom(value: string | undefined): boolean {
  if (value === undefined || value === '' || value === '1') return true;
  if (value === '0') return false;
  throw new Error(`SLUICE_NATS_AUTH must be 1 (the default: NATS with Sluice's users) or 0 (without users), not ${JSON.stringify(value)}`);
}

const DEFAULT_NATS_PORT = 4222;

/**
 * NATS_URL when set. Else 127.0.0.1:4222, unless the stack is to run its own nats-server with users
 * and something already listens there (a system nats-server, say): then the next free port up to
 * 4241, said in the log, so `npm start` on such a machine still comes up secured instead of stopping.
 */
async function natsUrlToUse(): Promise<string> {
  if (env.NATS_URL) return env.NATS_URL;
  const urlOf = (port: number) => `nats://127.0.0.1:${port}`;
  if (!natsAuth || (await portFree(DEFAULT_NATS_PORT))) return urlOf(DEFAULT_NATS_PORT);
  for (let port = DEFAULT_NATS_PORT + 1; port < DEFAULT_NATS_PORT + 20; port++) {
    if (await portFree(port)) {
      log.warn(
        { taken: urlOf(DEFAULT_NATS_PORT), nats: urlOf(port) },
        'port 4222 is taken by another server; Sluice runs its own NATS on the next free port (set NATS_URL to choose)',
      );
      return urlOf(port);
    }
  }
  throw new Error("ports 4222-4241 are all taken; set NATS_URL to a free port for the stack's own nats-server");
}

const stack = await startStack({
  dataDir,
  natsUrl: await natsUrlToUse(),
  natsAuth,
  ...(env.DATABASE_URL ? { databaseUrl: env.DATABASE_URL } : {}),
  ingressPort: Number(env.SLUICE_INGRESS_PORT ?? 8080),
  ledgerPort: Number(env.SLUICE_LEDGER_PORT ?? 8081),
  ...(useOpenAi ? { upstreamUrl: env.SLUICE_UPSTREAM_URL ?? 'https://api.openai.com/v1' } : { sim: { port: Number(env.SIM_PORT ?? 8090) } }),
  config: JSON.parse(readFileSync(configPath, 'utf8')),
  devKey,
  adminKey,
  onLine: (service, line) => {
    if (verbose) process.stdout.write(`[${service}] ${line}\n`);
  },
  onExit: (service, code, signal, restarting) =>
    log[restarting ? 'warn' : 'info']({ service_exited: service, code, signal, restarting }, restarting ? 'service died; restarting' : 'service stopped'),
});

rememberNatsUrl(dataDir, stack.natsUrl);
log.info(
  {
    ingress: `${stack.ingressUrl}/v1`,
    ledger: stack.ledgerUrl,
    nats: stack.natsUrl,
    // where the passwords are, never a password
    natsUsers: natsAuth ? `${credentialsDir(dataDir)}/<user> (operator; ${appUser('<tenant>')} for applications)` : 'none (SLUICE_NATS_AUTH=0)',
    upstream: stack.sim ? `simulator ${stack.sim.url}` : 'OpenAI',
    database: env.DATABASE_URL ? 'postgres (DATABASE_URL)' : `PGlite under ${join(dataDir, 'pglite')}`,
    config: configPath,
  },
  'sluice is up',
);
process.stdout.write(
  `\nTry it:\n  curl -s ${stack.ingressUrl}/v1/chat/completions -H 'authorization: Bearer ${devKey === 'sk-sluice-dev' ? devKey : '<SLUICE_DEV_KEY>'}' \\\n` +
    `    -H 'content-type: application/json' -d '{"model":"auto","messages":[{"role":"user","content":"Hello"}]}'\n` +
    `  curl -s '${stack.ledgerUrl}/v1/costs?groupBy=tenant,model' -H 'authorization: Bearer ${adminKey === DEFAULT_ADMIN_KEY ? adminKey : '<SLUICE_ADMIN_KEY>'}'\n` +
    `  open ${stack.ledgerUrl}/ for the web console (sign in with ${adminKey === DEFAULT_ADMIN_KEY ? adminKey : '<SLUICE_ADMIN_KEY>'})\n` +
    (natsAuth
      ? `  NATS (${stack.natsUrl}) as tenant dev's application: user ${appUser('dev')}, password in ${join(credentialsDir(dataDir), appUser('dev'))},\n` +
        `    inboxPrefix ${tenantInboxPrefix('dev')} (docs/nats-security.md);\n` +
        `    npm run config -- show   finds this NATS and connects as operator by itself\n\n`
      : '\n'),
);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping the stack');
    void stack.stop().then(() => process.exit(0));
  });
}
