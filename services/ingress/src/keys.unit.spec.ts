import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { hashKey, parseConfig, type VirtualKey } from '@sluice/contracts';
import { checkKeyModel, emptyKeyIndex, putKey, removeKey, requestKey } from './keys.js';
import { RequestRejected } from './rejection.js';
import { authenticate, indexTenants, modelsFor } from './tenants.js';

const config = parseConfig(JSON.parse(readFileSync(new URL('./fixtures/config.json', import.meta.url), 'utf8')));
const tenants = indexTenants(config);
const NOW = Date.UTC(2026, 10, 30, 12);

function virtualKey(fields: Partial<VirtualKey> & { secret: string }): VirtualKey {
  const { secret, ...rest } = fields;
  return { id: 'key_aaaaaaaaaaaaaaaaaaaa', tenant: 'acme', name: 'ci', sha256: hashKey(secret), createdAt: NOW - 1000, ...rest };
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof RequestRejected) return e.code;
    throw e;
  }
  return 'accepted';
}

describe('authenticate with virtual keys', () => {
  it('given a virtual key, then its tenant and the key', () => {
    const keys = emptyKeyIndex();
    putKey(keys, virtualKey({ secret: 'sk-sluice-one', limits: { requestsPerMinute: 5, tokensPerMinute: 500 } }));
    const caller = authenticate(tenants, 'sk-sluice-one', undefined, keys, NOW);
    expect(caller.tenant.id).toBe('acme');
    expect(caller.key?.id).toBe('key_aaaaaaaaaaaaaaaaaaaa');
    expect(requestKey(caller.key!)).toEqual({ id: 'key_aaaaaaaaaaaaaaaaaaaa', limits: { requestsPerMinute: 5, tokensPerMinute: 500 } });
  });

  it('given a config key, then no virtual key', () => {
    expect(authenticate(tenants, 'sk-acme-test', undefined, emptyKeyIndex(), NOW)).toEqual({ tenant: expect.objectContaining({ id: 'acme' }) });
  });

  it('given a revoked or expired key, then key_expired', () => {
    const keys = emptyKeyIndex();
    putKey(keys, virtualKey({ secret: 'sk-sluice-revoked', revokedAt: NOW - 1 }));
    putKey(keys, virtualKey({ id: 'key_bbbbbbbbbbbbbbbbbbbb', secret: 'sk-sluice-expired', expiresAt: NOW }));
    putKey(keys, virtualKey({ id: 'key_cccccccccccccccccccc', secret: 'sk-sluice-later', expiresAt: NOW + 1 }));
    expect(code(() => authenticate(tenants, 'sk-sluice-revoked', undefined, keys, NOW))).toBe('key_expired');
    expect(code(() => authenticate(tenants, 'sk-sluice-expired', undefined, keys, NOW))).toBe('key_expired');
    expect(authenticate(tenants, 'sk-sluice-later', undefined, keys, NOW).key?.id).toBe('key_cccccccccccccccccccc');
  });

  it('given a rotation, then the previous key works until its grace ends and the new one from the start', () => {
    const keys = emptyKeyIndex();
    putKey(keys, virtualKey({ secret: 'sk-sluice-old' }));
    putKey(keys, virtualKey({ secret: 'sk-sluice-new', previousSha256: hashKey('sk-sluice-old'), previousExpiresAt: NOW + 60_000, rotatedAt: NOW }));
    expect(authenticate(tenants, 'sk-sluice-old', undefined, keys, NOW + 59_999).key?.id).toBe('key_aaaaaaaaaaaaaaaaaaaa');
    expect(code(() => authenticate(tenants, 'sk-sluice-old', undefined, keys, NOW + 60_000))).toBe('key_expired');
    expect(authenticate(tenants, 'sk-sluice-new', undefined, keys, NOW + 60_000).key?.id).toBe('key_aaaaaaaaaaaaaaaaaaaa');
  });

  it('given a rotation without grace, then the previous key is not known at all', () => {
    const keys = emptyKeyIndex();
    putKey(keys, virtualKey({ secret: 'sk-sluice-old' }));
    putKey(keys, virtualKey({ secret: 'sk-sluice-new', rotatedAt: NOW }));
    expect(code(() => authenticate(tenants, 'sk-sluice-old', undefined, keys, NOW))).toBe('invalid_api_key');
  });

  it('given a key that was deleted from the bucket, then invalid_api_key', () => {
    const keys = emptyKeyIndex();
    putKey(keys, virtualKey({ secret: 'sk-sluice-gone' }));
    removeKey(keys, 'key_aaaaaaaaaaaaaaaaaaaa');
    expect(code(() => authenticate(tenants, 'sk-sluice-gone', undefined, keys, NOW))).toBe('invalid_api_key');
    expect(keys.byId.size + keys.bySha.size).toBe(0);
  });

  it('given a key of an unconfigured tenant or another claimed tenant, then invalid_api_key', () => {
    const keys = emptyKeyIndex();
    putKey(keys, virtualKey({ secret: 'sk-sluice-orphan', tenant: 'gone' }));
    putKey(keys, virtualKey({ id: 'key_bbbbbbbbbbbbbbbbbbbb', secret: 'sk-sluice-acme' }));
    expect(code(() => authenticate(tenants, 'sk-sluice-orphan', undefined, keys, NOW))).toBe('invalid_api_key');
    expect(code(() => authenticate(tenants, 'sk-sluice-acme', 'beta', keys, NOW))).toBe('invalid_api_key');
    expect(authenticate(tenants, 'sk-sluice-acme', 'acme', keys, NOW).tenant.id).toBe('acme');
  });
});

describe('a virtual key narrows the models', () => {
  const key = virtualKey({ secret: 'sk-sluice-small', models: ['small'] });

  it('given a model outside the key, then model_not_allowed; inside, or auto, accepted', () => {
    expect(code(() => checkKeyModel(key, 'large'))).toBe('model_not_allowed');
    expect(code(() => checkKeyModel(key, 'small'))).toBe('accepted');
    expect(code(() => checkKeyModel(key, 'auto'))).toBe('accepted');
    expect(code(() => checkKeyModel(undefined, 'large'))).toBe('accepted');
  });

  it('lists only the models both the tenant and the key allow', () => {
    expect(modelsFor(config.tenants[0]!, config, key)).toEqual(['small', 'auto']);
    expect(modelsFor(config.tenants[1]!, config, { ...key, models: ['large'] })).toEqual(['auto']);
  });
});
