/**
 * `npm start`: the whole stack on one machine, on embedded defaults. The npm script builds first
 * (`turbo run build`), and each service runs its compiled dist/main.js; this launcher alone goes
 * through tsx, its @sluice imports resolving to the build as well.
 * NATS from NATS_URL (a local nats-server is started when none answers), the ledger on
 * DATABASE_URL or PGlite under .sluice/, the simulator as upstream unless OPENAI_API_KEY is set.
 * SLUICE_DEV_KEY (default sk-sluice-dev) is tenant `dev`'s key, SLUICE_ADMIN_KEY (default
 * sk-sluice-admin) the ledger's admin key; the services get only their SHA-256.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createLogger } from '@sluice/telemetry';
import { DEFAULT_ADMIN_KEY, ROOT, startStack } from './stack.js';

const env = process.env;
const log = createLogger('stack');
const configPath = resolve(env.SLUICE_CONFIG ?? join(ROOT, 'config', 'sluice.json'));
const devKey = env.SLUICE_DEV_KEY ?? 'sk-sluice-dev';
const adminKey = env.SLUICE_ADMIN_KEY ?? DEFAULT_ADMIN_KEY;
const useOpenAi = Boolean(env.OPENAI_API_KEY);
const verbose = env.SLUICE_LOG_SERVICES !== '0';

const stack = await startStack({
  dataDir: resolve(env.SLUICE_DATA_DIR ?? join(ROOT, '.sluice')),
  natsUrl: env.NATS_URL ?? 'nats://127.0.0.1:4222',
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

log.info(
  {
    ingress: `${stack.ingressUrl}/v1`,
    ledger: stack.ledgerUrl,
    nats: stack.natsUrl,
    upstream: stack.sim ? `simulator ${stack.sim.url}` : 'OpenAI',
    database: env.DATABASE_URL ? 'postgres (DATABASE_URL)' : 'PGlite under .sluice/pglite',
    config: configPath,
  },
  'sluice is up',
);
process.stdout.write(
  `\nTry it:\n  curl -s ${stack.ingressUrl}/v1/chat/completions -H 'authorization: Bearer ${devKey === 'sk-sluice-dev' ? devKey : '<SLUICE_DEV_KEY>'}' \\\n` +
    `    -H 'content-type: application/json' -d '{"model":"auto","messages":[{"role":"user","content":"Hello"}]}'\n` +
    `  curl -s '${stack.ledgerUrl}/v1/costs?groupBy=tenant,model' -H 'authorization: Bearer ${adminKey === DEFAULT_ADMIN_KEY ? adminKey : '<SLUICE_ADMIN_KEY>'}'\n` +
    `  open ${stack.ledgerUrl}/ for the web console (sign in with ${adminKey === DEFAULT_ADMIN_KEY ? adminKey : '<SLUICE_ADMIN_KEY>'})\n\n`,
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
