import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from './config.js';
import { hashKey } from './hash.js';
import { isConfigKeyHashes, splitKeyHashes, withKeyHashes } from './key-hashes.js';

const rate = { requestsPerMinute: 10, tokensPerMinute: 1000 };
const file = (tenants: Array<Record<string, unknown>>) => ({
  tenants,
  limits: { global: rate, tenantDefault: rate, userDefault: rate },
  deployments: { d1: { baseUrl: 'http://127.0.0.1:1/v1', timeoutMs: 1000 } },
  models: { m1: { deployments: ['d1'], fallback: [], price: { inputPerMTok: 1, outputPerMTok: 1 } } },
  tiers: [{ name: 'only', model: 'm1', maxComplexity: 1 }],
  router: {},
  invoker: {},
  cache: {},
  degrader: {},
  ingress: {},
  admin: { keySha256: [hashKey('sk-admin')] },
});
const full = parseConfig(
  file([
    { id: 'acme', keySha256: [hashKey('sk-acme')], readKeySha256: [hashKey('rk-acme')], models: ['m1'] },
    { id: 'beta', keySha256: [hashKey('sk-beta')] },
  ]),
);

describe('key hashes apart from the config', () => {
  it('given a config, splitKeyHashes leaves no hash in it and every hash in its hashes', () => {
    const { config, hashes } = splitKeyHashes(full);
    const text = JSON.stringify(config);
    for (const key of ['sk-admin', 'sk-acme', 'rk-acme', 'sk-beta']) expect(text).not.toContain(hashKey(key));
    expect(isConfigKeyHashes(hashes)).toBe(true);
    expect(hashes).toEqual({
      tenants: { acme: { keySha256: [hashKey('sk-acme')], readKeySha256: [hashKey('rk-acme')] }, beta: { keySha256: [hashKey('sk-beta')] } },
      admin: [hashKey('sk-admin')],
    });
    expect(config.tenants[0]!.models).toEqual(['m1']);
  });

  it('the stored half parses as a stored config, not as a file', () => {
    const { config } = splitKeyHashes(full);
    expect(parseConfig(JSON.parse(JSON.stringify(config)), { keyHashesApart: true }).tenants.map((t) => t.id)).toEqual(['acme', 'beta']);
    expect(() => parseConfig(JSON.parse(JSON.stringify(config)))).toThrow(
      new ConfigError(
        "config.tenants.0.keySha256: required (the SHA-256 of each of the tenant's API keys); config.tenants.1.keySha256: required (the SHA-256 of each of the tenant's API keys)",
      ),
    );
  });

  it('withKeyHashes puts them back; without hashes the config keeps its own (one stored before they were apart)', () => {
    const { config, hashes } = splitKeyHashes(full);
    expect(splitKeyHashes(withKeyHashes(config, hashes))).toEqual(splitKeyHashes(full));
    const merged = withKeyHashes(config, hashes);
    expect(merged.tenants.find((t) => t.id === 'acme')).toMatchObject({ keySha256: [hashKey('sk-acme')], readKeySha256: [hashKey('rk-acme')] });
    expect(merged.admin.keySha256).toEqual([hashKey('sk-admin')]);
    expect(withKeyHashes(full, undefined)).toBe(full);
  });

  it('a tenant the hashes do not name has no config key, and a rotated hash replaces the old', () => {
    const { config } = splitKeyHashes(full);
    const merged = withKeyHashes(config, { tenants: { acme: { keySha256: [hashKey('sk-acme-2')] } }, admin: [] });
    expect(merged.tenants.map((t) => t.keySha256)).toEqual([[hashKey('sk-acme-2')], undefined]);
    expect(merged.tenants[0]!.readKeySha256).toBeUndefined();
  });
});
