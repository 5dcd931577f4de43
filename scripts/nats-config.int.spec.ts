import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Topology } from '@sluice/contracts';
import { natsServerOnPath } from '@sluice/bus/nats-server';
import { ROOT } from './stack.js';

// Every shipped NATS config sets max_payload deliberately, to the one value Sluice sizes its
// requests by. (The stack's own nats-server is checked against a running server in the e2e suite.)
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const maxPayloadOf = (conf: string) => Number(/^max_payload:\s*(\d+)\s*$/m.exec(conf)?.[1]);

describe('shipped NATS configs', () => {
  it('set max_payload to Topology.maxPayloadBytes (8 MiB) in the cluster and the standalone config', () => {
    expect(Topology.maxPayloadBytes).toBe(8 * 1024 * 1024);
    expect(maxPayloadOf(read('deploy/nats/nats.conf'))).toBe(Topology.maxPayloadBytes);
    expect(maxPayloadOf(read('deploy/nats/standalone.conf'))).toBe(Topology.maxPayloadBytes);
  });

  it('docker-compose runs nats-server with the standalone config', () => {
    const compose = read('docker-compose.yml');
    expect(compose).toContain('command: ["nats-server", "-c", "/etc/nats/standalone.conf"]');
    expect(compose).toContain('./deploy/nats/standalone.conf:/etc/nats/standalone.conf:ro');
  });

  it('the standalone config is one nats-server accepts', () => {
    const r = check('deploy/nats/standalone.conf');
    expect(r.out).toContain('is valid');
    expect(r.status).toBe(0);
  });

  // The cluster's routes are only parsed by -t, not dialled, so one machine can check it; its
  // passwords, server name and advertised address come from the environment, as in Kubernetes.
  it('the cluster config (and the users.conf it includes) is one nats-server accepts with its variables set', () => {
    const conf = read('deploy/nats/nats.conf') + read('deploy/nats/users.conf');
    expect(conf).toMatch(/^include users\.conf$/m);
    const declared = new Set([...conf.matchAll(/^([A-Z][A-Z_]*)\s*=/gm)].map((m) => m[1]));
    const fromEnv = [...new Set([...conf.matchAll(/[:\s]\$([A-Z][A-Z_0-9]*)\b/g)].map((m) => m[1]!))].filter((v) => !declared.has(v));
    expect(fromEnv).toEqual(expect.arrayContaining(['SERVER_NAME', 'CLIENT_ADVERTISE', 'OPERATOR_PASS', 'INGRESS_PASS', 'APP_DEV_PASS']));
    const env = Object.fromEntries(fromEnv.map((v) => [v, v === 'CLIENT_ADVERTISE' ? '127.0.0.1:4222' : `test-${v.toLowerCase()}`]));
    const ok = check('deploy/nats/nats.conf', env);
    expect(ok.out).toContain('is valid');
    expect(ok.status).toBe(0);
    // and the check is real: without them the file does not parse
    expect(check('deploy/nats/nats.conf').status).not.toBe(0);
  });
});

function check(path: string, env: Record<string, string> = {}): { out: string; status: number | null } {
  const bin = natsServerOnPath();
  if (!bin) throw new Error('nats-server is not on PATH');
  const r = spawnSync(bin, ['-c', join(ROOT, path), '-t'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', ...env } });
  return { out: `${r.stdout}${r.stderr}`, status: r.status };
}
