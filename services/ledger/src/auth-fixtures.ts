// Keys for the ledger's tests: an admin key and a read key per tenant, in a config that names them.
import { hashKey, parseConfig, type SluiceConfig } from '@sluice/contracts';
import { minimalConfig } from '@sluice/bus/testing';

export const ADMIN_KEY = 'sk-test-ledger-admin';
export const READ_KEYS = { acme: 'sk-test-read-acme', beta: 'sk-test-read-beta' } as const;

/** `Authorization` headers for `app.inject` and fetch. */
export const asAdmin = { authorization: `Bearer ${ADMIN_KEY}` } as const;
export const asReader = (tenant: keyof typeof READ_KEYS) => ({ authorization: `Bearer ${READ_KEYS[tenant]}` });

/**
 * A config with the admin key, tenants acme and beta with their read keys, and any `extra`
 * tenant fields (e.g. `{ acme: { ledger: { storeContent: true } } }`).
 */
export function readersConfig(extra: Partial<Record<keyof typeof READ_KEYS, Record<string, unknown>>> = {}): SluiceConfig {
  const tenants = (Object.keys(READ_KEYS) as Array<keyof typeof READ_KEYS>).map((id) => ({ id, readKeySha256: [hashKey(READ_KEYS[id])], ...extra[id] }));
  return parseConfig({ ...minimalConfig(tenants), admin: { keySha256: [hashKey(ADMIN_KEY)] } });
}
