import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlKeys, hashKey, KeyHashKeys, type ConfigKeyHashes, type SluiceConfig } from '@sluice/contracts';
import { getJson } from '@sluice/bus';
import { minimalConfig, startTestBus, type TestBus } from '@sluice/bus/testing';
import { runScript, type ScriptRun } from './run-script.js';
import { ROOT } from './stack.js';

// Issue 11, item 7: `npm run config -- apply` validates a file as the services do at start; a bad
// one is refused with the wrong key's path, and the running config stays as it was.

/** `npm run config -- <args>` against the test's server: its exit code and output. */
function runConfig(natsUrl: string, args: string[]): Promise<ScriptRun> {
  return runScript('config.ts', natsUrl, args, { SLUICE_UPSTREAM_URL: 'http://127.0.0.1:9/v1' });
}

let t: TestBus;
let dir: string;
beforeAll(async () => {
  t = await startTestBus(minimalConfig([{ id: 'acme' }]), { name: 'config-cli' });
  dir = mkdtempSync(join(tmpdir(), 'sluice-config-cli-'));
});
afterAll(async () => {
  await t?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const current = async () => (await getJson<SluiceConfig>(t.buckets.control, ControlKeys.config))?.value;

describe('npm run config -- apply', () => {
  it('refuses a file with an invented section, naming it, and leaves the live config as it was', async () => {
    const before = await current();
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ ...minimalConfig([{ id: 'acme' }]), budgets: { acme: { dailyUsd: 10 } } }));
    const r = await runConfig(t.nats.url, ['apply', file]);
    expect(r.code).not.toBe(0);
    expect(r.err).toContain('config.budgets: Unexpected property');
    expect(r.out).not.toContain('applied');
    expect(await current()).toEqual(before);
  });

  it('applies the shipped config, token budgets and all', async () => {
    const r = await runConfig(t.nats.url, ['apply', join(ROOT, 'config', 'sluice.json')]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^applied .*sluice\.json: \d+ tenants, \d+ models\n$/);
    const shipped = JSON.parse(readFileSync(join(ROOT, 'config', 'sluice.json'), 'utf8')) as SluiceConfig;
    expect((await current())?.tokenBudgets).toEqual(shipped.tokenBudgets);
  });

  it('keeps the key hashes out of sluice_control, which every service reads: they go to sluice_tenant_keys', async () => {
    const file = join(dir, 'keys.json');
    const keySha256 = [hashKey('sk-acme-cli')];
    const readKeySha256 = [hashKey('rk-acme-cli')];
    const admin = [hashKey('sk-admin-cli')];
    writeFileSync(file, JSON.stringify({ ...minimalConfig([{ id: 'acme', keySha256, readKeySha256 }]), admin: { keySha256: admin } }));
    const r = await runConfig(t.nats.url, ['apply', file]);
    expect(r.code).toBe(0);
    const stored = (await t.buckets.control.get(ControlKeys.config))!.string();
    for (const hash of [...keySha256, ...readKeySha256, ...admin]) expect(stored).not.toContain(hash);
    expect((await current())?.tenants).toEqual([expect.not.objectContaining({ keySha256: expect.anything() })]);
    expect((await getJson<ConfigKeyHashes>(t.buckets.tenantKeys, KeyHashKeys.config))?.value).toEqual({
      tenants: { acme: { keySha256, readKeySha256 } },
      admin,
    });
  });
});
