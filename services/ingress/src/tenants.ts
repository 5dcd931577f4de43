import { hashKey, type SluiceConfig, type Tenant, type VirtualKey } from '@sluice/contracts';
import { emptyKeyIndex, findKey, type KeyIndex } from './keys.js';
import { RequestRejected } from './rejection.js';

/** Tenants by the SHA-256 of their config keys, and by id (a virtual key names its tenant). */
export interface TenantIndex {
  readonly bySha: ReadonlyMap<string, Tenant>;
  readonly byId: ReadonlyMap<string, Tenant>;
}

export function indexTenants(config: SluiceConfig): TenantIndex {
  const bySha = new Map<string, Tenant>();
  for (const tenant of config.tenants) {
    for (const digest of tenant.keySha256 ?? []) if (!bySha.has(digest)) bySha.set(digest, tenant);
  }
  return { bySha, byId: new Map(config.tenants.map((t) => [t.id, t])) };
}

/** Who a key says the caller is: its tenant, and the virtual key when it is one. */
export interface Caller {
  tenant: Tenant;
  key?: VirtualKey;
}

const NO_KEYS = emptyKeyIndex();

/**
 * The tenant (and virtual key) a key belongs to: a config key (`tenants[].keySha256`) or a
 * virtual key from the admin API, one hash and at most two map lookups either way.
 * `claimedTenant` is the tenant the caller addressed (the NATS subject's last token); the key
 * must belong to it. A virtual key whose tenant is no longer configured is not valid.
 *
 * @throws RequestRejected missing_api_key | invalid_api_key | key_expired (revoked, expired, or
 *   a rotated-out key after its grace period)
 * @example
 * const { tenant, key } = authenticate(deps.tenants(), bearerKey(authorization), undefined, deps.keys(), Date.now());
 */
export function authenticate(index: TenantIndex, key: string | undefined, claimedTenant?: string, keys: KeyIndex = NO_KEYS, now = 0): Caller {
  if (!key) throw new RequestRejected('missing_api_key');
  const digest = hashKey(key);
  const tenant = index.bySha.get(digest);
  if (tenant) {
    if (claimedTenant !== undefined && tenant.id !== claimedTenant) throw new RequestRejected('invalid_api_key');
    return { tenant };
  }
  const virtual = findKey(keys, digest, now);
  const owner = virtual && index.byId.get(virtual.tenant);
  if (!virtual || !owner || (claimedTenant !== undefined && owner.id !== claimedTenant)) throw new RequestRejected('invalid_api_key');
  return { tenant: owner, key: virtual };
}

/** The key from `Authorization: Bearer <key>`; undefined when absent or another scheme. */
export function bearerKey(header: string | undefined): string | undefined {
  const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  return m ? m[1] : undefined;
}

/**
 * Models a caller may name: its tenant's list (or every configured model), narrowed to its
 * virtual key's when the key has one; `auto` is always allowed.
 */
export function modelsFor(tenant: Tenant, config: SluiceConfig, key?: VirtualKey): string[] {
  const models = tenant.models ?? Object.keys(config.models);
  return [...(key?.models ? models.filter((m) => key.models!.includes(m)) : models), 'auto'];
}
