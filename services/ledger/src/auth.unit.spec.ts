import { describe, expect, it } from 'vitest';
import { hashKey, parseConfig, SluiceError } from '@sluice/contracts';
import { minimalConfig } from '@sluice/bus/testing';
import { maySeeRequest, principalOf, readerIndex, requireAdmin, tenantScope } from './auth.js';
import { ADMIN_KEY, READ_KEYS, readersConfig } from './auth-fixtures.js';

const config = readersConfig();
const index = readerIndex(config);
const bearer = (key: string) => `Bearer ${key}`;

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof SluiceError) return e.code;
    throw e;
  }
  return 'allowed';
}

describe('principalOf', () => {
  it('given the admin key, then admin; given a read key, then its tenant', () => {
    expect(principalOf(index, bearer(ADMIN_KEY))).toEqual({ role: 'admin' });
    expect(principalOf(index, bearer(READ_KEYS.acme))).toEqual({ role: 'tenant', tenant: 'acme' });
    expect(principalOf(index, `bearer  ${READ_KEYS.beta} `)).toEqual({ role: 'tenant', tenant: 'beta' });
  });

  it('given no key or another scheme, then missing_api_key; an unknown key, then invalid_api_key', () => {
    for (const header of [undefined, '', 'Bearer', 'Basic YWRtaW46YWRtaW4=', `Bearer ${ADMIN_KEY} extra`]) {
      expect([header, code(() => principalOf(index, header))]).toEqual([header, 'missing_api_key']);
    }
    expect(code(() => principalOf(index, bearer('sk-nobody')))).toBe('invalid_api_key');
  });

  it("given a tenant's API key (for ingress), then invalid_api_key: it does not open the ledger", () => {
    const withApiKey = parseConfig({ ...minimalConfig([{ id: 'acme', keySha256: [hashKey('sk-acme-api')] }]), admin: { keySha256: [hashKey(ADMIN_KEY)] } });
    expect(code(() => principalOf(readerIndex(withApiKey), bearer('sk-acme-api')))).toBe('invalid_api_key');
  });

  it('given a hash that is both an admin key and a read key, then admin wins', () => {
    const both = parseConfig({ ...minimalConfig([{ id: 'acme', readKeySha256: [hashKey('sk-same')] }]), admin: { keySha256: [hashKey('sk-same')] } });
    expect(principalOf(readerIndex(both), bearer('sk-same'))).toEqual({ role: 'admin' });
  });

  it('given a new config, then a new index: a removed key stops working', () => {
    const next = parseConfig({ ...minimalConfig([{ id: 'acme' }]), admin: { keySha256: [hashKey('sk-new-admin')] } });
    expect(code(() => principalOf(readerIndex(next), bearer(ADMIN_KEY)))).toBe('invalid_api_key');
    expect(principalOf(readerIndex(next), bearer('sk-new-admin'))).toEqual({ role: 'admin' });
    expect(readerIndex(config)).toBe(index);
  });
});

describe('what a principal may read', () => {
  const admin = { role: 'admin' } as const;
  const acme = { role: 'tenant', tenant: 'acme' } as const;

  it('an admin reads any tenant, or all of them', () => {
    expect(tenantScope(admin, undefined)).toBeUndefined();
    expect(tenantScope(admin, 'beta')).toBe('beta');
    expect(maySeeRequest(admin, 'beta')).toBe(true);
    expect(code(() => requireAdmin(admin))).toBe('allowed');
  });

  it('a read key reads its own tenant, asked or not, and is refused another', () => {
    expect(tenantScope(acme, undefined)).toBe('acme');
    expect(tenantScope(acme, 'acme')).toBe('acme');
    expect(code(() => tenantScope(acme, 'beta'))).toBe('permission_denied');
    expect(maySeeRequest(acme, 'acme')).toBe(true);
    expect(maySeeRequest(acme, 'beta')).toBe(false);
    expect(maySeeRequest(acme, null)).toBe(false);
    expect(code(() => requireAdmin(acme))).toBe('permission_denied');
  });
});
