// A private nats-server with Sluice's users and rights (nats-auth.ts), for `startStack({ natsAuth })`
// and the tests: its config and the passwords under one directory, its log beside them.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { natsServerOnPath, type LocalNats } from '@sluice/bus/nats-server';
import { natsAuthConfig, natsPasswords, natsUserNames, natsUsers, OPERATOR_USER } from './nats-auth.js';

export interface AuthNats extends LocalNats {
  /** Every user's password, by user name (the operator, the services, `app-<tenant>`). */
  passwords: Readonly<Record<string, string>>;
  /** The generated config (mode 0600: it holds the passwords). */
  confPath: string;
  /** nats-server's log: a right a service lacks shows here as a "Publish Violation" or "Subscription Violation". */
  logPath: string;
}

/** Where the users' passwords are kept under a stack's data dir: one file per user, named after it. */
export const credentialsDir = (dir: string) => join(dir, 'credentials');

/**
 * The operator's password a stack with NATS users left under `dir` (`<dir>/credentials/operator`),
 * or undefined when there is none (the stack ran without users, or not from this data dir).
 */
export function storedOperatorPassword(dir: string): string | undefined {
  const file = join(credentialsDir(dir), OPERATOR_USER);
  return existsSync(file) ? readFileSync(file, 'utf8').trim() || undefined : undefined;
}

/** Where `npm start` notes the NATS URL it ran on, so `npm run config` finds that NATS without NATS_URL. */
const natsUrlFile = (dir: string) => join(dir, 'nats.url');

/** Notes `url` as the NATS the stack under `dir` runs on (see `storedNatsUrl`). */
export function rememberNatsUrl(dir: string, url: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(natsUrlFile(dir), `${url}\n`);
}

/** The NATS URL `npm start` last ran on with data dir `dir`, or undefined when it never did. */
export function storedNatsUrl(dir: string): string | undefined {
  const file = natsUrlFile(dir);
  return existsSync(file) ? readFileSync(file, 'utf8').trim() || undefined : undefined;
}

/**
 * Starts nats-server on 127.0.0.1:`port` with the users of `tenants`: config `<dir>/nats-auth.conf`,
 * passwords in `<dir>/credentials/<user>` (kept across restarts), JetStream under `<dir>/nats`,
 * log `<dir>/nats-server.log`. No monitoring port. Resolves once the operator can connect.
 *
 * @example
 * const nats = await startAuthNats({ dir: '.sluice', port: 4222, tenants: ['dev'] });
 * const nc = await connect({ servers: nats.url, user: 'app-dev', pass: nats.passwords['app-dev'], inboxPrefix: tenantInboxPrefix('dev') });
 */
export async function startAuthNats(opts: { dir: string; port: number; tenants: readonly string[] }): Promise<AuthNats> {
  const bin = natsServerOnPath();
  if (!bin) throw new Error('nats-server is not on PATH; install it (apt-get install nats-server) or set NATS_URL');
  mkdirSync(opts.dir, { recursive: true });
  const passwords = natsPasswords(credentialsDir(opts.dir), natsUserNames(opts.tenants));
  const confPath = join(opts.dir, 'nats-auth.conf');
  const logPath = join(opts.dir, 'nats-server.log');
  writeFileSync(confPath, natsAuthConfig({ storeDir: join(opts.dir, 'nats'), users: natsUsers(opts.tenants, passwords) }), { mode: 0o600 });
  const proc = spawn(bin, ['-c', confPath, '-a', '127.0.0.1', '-p', String(opts.port), '-l', logPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => void (stderr = (stderr + d.toString()).slice(-4000)));
  const url = `nats://127.0.0.1:${opts.port}`;
  for (let i = 0; i < 100; i++) {
    if (proc.exitCode !== null) throw new Error(`nats-server exited (see ${logPath}): ${stderr}`);
    const nc = await connect({ servers: url, user: OPERATOR_USER, pass: passwords[OPERATOR_USER]!, timeout: 500, reconnect: false }).catch(() => undefined);
    if (nc) {
      await nc.close();
      return {
        url,
        port: opts.port,
        process: proc,
        passwords,
        confPath,
        logPath,
        stop: () =>
          new Promise<void>((resolve) => {
            if (proc.exitCode !== null) return resolve();
            proc.once('exit', () => resolve());
            proc.kill('SIGTERM');
          }),
      };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill('SIGKILL');
  throw new Error(`nats-server did not answer on ${url} (see ${logPath}): ${stderr}`);
}
