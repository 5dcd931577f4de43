import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '@sluice/contracts';
import { RequestRejected } from './rejection.js';
import { authenticate, bearerKey, indexTenants, modelsFor } from './tenants.js';

const config = parseConfig(JSON.parse(readFileSync(new URL('./fixtures/config.json', import.meta.url), 'utf8')));
const index = indexTenants(config);

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof RequestRejected) return e.code;
    throw e;
  }
  return 'accepted';
}

describe('authenticate', () => {
  it('given a tenant key, then its tenant', () => {
    expect(authenticate(index, 'sk-acme-test').tenant.id).toBe('acme');
    expect(authenticate(index, 'sk-beta-test', 'beta').tenant.id).toBe('beta');
  });

  it('given no key, then missing_api_key', () => {
    expect(code(() => authenticate(index, undefined))).toBe('missing_api_key');
    expect(code(() => authenticate(index, ''))).toBe('missing_api_key');
  });

  it('given an unknown key, then invalid_api_key', () => {
    expect(code(() => authenticate(index, 'sk-nobody'))).toBe('invalid_api_key');
  });

  it("given another tenant's key for the claimed tenant, then invalid_api_key", () => {
    expect(code(() => authenticate(index, 'sk-acme-test', 'beta'))).toBe('invalid_api_key');
  });

  it('given a config change, then a new index knows the new key and forgets the old', () => {
    const next = indexTenants({ ...config, tenants: [{ id: 'acme', keySha256: ['8cfc081275dc8661b5563ac4561098699d983863324c12e7f05688ddf16d8ca9'] }] });
    expect(authenticate(next, 'sk-beta-test').tenant.id).toBe('acme');
    expect(code(() => authenticate(next, 'sk-acme-test'))).toBe('invalid_api_key');
  });
});

describe('bearerKey', () => {
  it.each([
    ['Bearer sk-1', 'sk-1'],
    ['bearer  sk-1 ', 'sk-1'],
    ['Basic abc', undefined],
    ['Bearer', undefined],
    ['Bearer a b', undefined],
    [undefined, undefined],
  ])('given %j, then %j', (header, key) => {
    expect(bearerKey(header)).toBe(key);
  });
});

describe('modelsFor', () => {
  it('lists the tenant models or every model, plus auto', () => {
    expect(modelsFor(config.tenants[0]!, config)).toEqual(['small', 'large', 'auto']);
    expect(modelsFor(config.tenants[1]!, config)).toEqual(['small', 'auto']);
  });
});
