// npm run nats:users [config]: writes deploy/nats/users.conf, the NATS users and rights of the
// cluster config (deploy/nats/nats.conf includes it), from the same rights npm start's nats-server
// has (nats-auth.ts) and the tenants of the config (default config/sluice.json): one application
// user per tenant. Passwords are not written: each is read from the environment (`passwordVar`).
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { deployUsersConfig, passwordVar, natsUserNames } from './nats-auth.js';
import { ROOT, tenantIds } from './stack.js';

const configPath = resolve(process.argv[2] ?? join(ROOT, 'config', 'sluice.json'));
const tenants = tenantIds(JSON.parse(readFileSync(configPath, 'utf8')));
const out = join(ROOT, 'deploy', 'nats', 'users.conf');
writeFileSync(out, deployUsersConfig(tenants));
process.stdout.write(
  `wrote ${out} for tenants ${tenants.join(', ') || '(none)'}\n` +
    `its passwords come from the environment (in Kubernetes, the sluice-nats-users Secret): ${natsUserNames(tenants).map(passwordVar).join(', ')}\n`,
);
