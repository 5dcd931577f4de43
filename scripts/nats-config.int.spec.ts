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
    const bin = natsServerOnPath();
    if (!bin) throw new Error('nats-server is not on PATH');
    const r = spawnSync(bin, ['-c', join(ROOT, 'deploy/nats/standalone.conf'), '-t'], { encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`).toContain('is valid');
    expect(r.status).toBe(0);
  });
});
