import { hashKey, type SluiceConfig, type Tenant } from '@sluice/contracts';
import { RequestRejected } from './rejection.js';

/** Tenants by the SHA-256 of their keys: a key is checked with one hash and one map lookup. */
export type TenantIndex = ReadonlyMap<string, Tenant>;

export function indexTenants(config: SluiceConfig): TenantIndex {
  const index = new Map<string, Tenant>();
  for (const tenant of config.tenants) {
    for (const digest of tenant.keySha256) if (!index.has(digest)) index.set(digest, tenant);
  }
  return index;
}

/**
 * The tenant a key belongs to. `claimedTenant` is the tenant the caller addressed (the NATS
 * subject's last token); the key must belong to it.
 *
 * @throws RequestRejected missing_api_key | invalid_api_key
 */
export function authenticate(index: TenantIndex, key: string | undefined, claimedTenant?: string): Tenant {
  if (!key) throw new RequestRejected('missing_api_key');
  const tenant = index.get(hashKey(key));
  if (!tenant || (claimedTenant !== undefined && tenant.id !== claimedTenant)) throw new RequestRejected('invalid_api_key');
  return tenant;
}

/** The key from `Authorization: Bearer <key>`; undefined when absent or another scheme. */
export function bearerKey(header: string | undefined): string | undefined {
  const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  return m ? m[1] : undefined;
}

/** Models a tenant may name: its own list, or every configured model; `auto` is always allowed. */
export function modelsFor(tenant: Tenant, config: SluiceConfig): string[] {
  return [...(tenant.models ?? Object.keys(config.models)), 'auto'];
}
