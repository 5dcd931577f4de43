// A private nats-server for tests, the local stack and benchmarks (not needed by services at run time).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Topology } from '@sluice/contracts';
import { createServer } from 'node:net';
import { connect } from '@nats-io/transport-node';

/** True when a NATS server answers at `url` (or one of a cluster's comma-separated URLs) within `timeoutMs`. */
export async function natsAnswers(url: string, timeoutMs = 1000): Promise<boolean> {
  try {
    const nc = await connect({ servers: url.split(','), timeout: timeoutMs, reconnect: false });
    await nc.close();
    return true;
  } catch {
    return false;
  }
}

export function natsServerOnPath(): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v nats-server || ls /usr/sbin/nats-server'], { encoding: 'utf8' });
  const path = r.stdout.trim().split('\n')[0];
  return r.status === 0 && path ? path : undefined;
}

/** True when nothing listens on 127.0.0.1:`port` (a listen there succeeds), whatever would answer on it. */
export async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface LocalNats {
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Starts a nats-server with JetStream, its store under `storeDir`, and waits until it answers.
 * Its `max_payload` is the one the shipped configs set (`Topology.maxPayloadBytes`), written to
 * `<storeDir>/sluice.conf`: the command line has no flag for it.
 */
export async function startNats(storeDir: string, port: number): Promise<LocalNats> {
  const bin = natsServerOnPath();
  if (!bin) throw new Error('nats-server is not on PATH; install it (apt-get install nats-server) or set NATS_URL');
  mkdirSync(storeDir, { recursive: true });
  const conf = join(storeDir, 'sluice.conf');
  writeFileSync(conf, `# written by Sluice's startNats; see deploy/nats/standalone.conf\nmax_payload: ${Topology.maxPayloadBytes}\n`);
  return spawnNatsServer(bin, ['-c', conf, '-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir], port);
}

/** Runs nats-server with `args` and resolves once it answers on 127.0.0.1:`port` (used by nats-cluster.ts too). */
export async function spawnNatsServer(bin: string, args: readonly string[], port: number): Promise<LocalNats> {
  const proc = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => void (stderr = (stderr + d.toString()).slice(-4000)));
  const url = `nats://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    if (proc.exitCode !== null) throw new Error(`nats-server exited: ${stderr}`);
    if (await natsAnswers(url, 500)) {
      return {
        url,
        port,
        process: proc,
        stop: () =>
          new Promise<void>((resolve) => {
            if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
            proc.once('exit', () => resolve());
            proc.kill('SIGTERM');
          }),
      };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill('SIGKILL');
  throw new Error(`nats-server did not answer on ${url}: ${stderr}`);
}
