import { hashKey, SluiceError, type SluiceConfig } from '@sluice/contracts';

/**
 * Who may read the ledger (issue 11): an admin key (`admin.keySha256`) sees every tenant and may
 * use the admin API; a tenant's read key (`tenants[].readKeySha256`) sees that tenant's costs,
 * SLOs and timelines and nothing else. A tenant's API keys (config or virtual) are for ingress
 * only: they do not open the ledger.
 */
export type Principal = { role: 'admin' } | { role: 'tenant'; tenant: string };

/** Principals by key hash; one per config (see `readerIndex`). */
export type ReaderIndex = ReadonlyMap<string, Principal>;

const ADMIN: Principal = { role: 'admin' };
const indexes = new WeakMap<SluiceConfig, ReaderIndex>();

/** The readers of a config, built once per config (the live config is replaced, never changed). An admin hash wins over a read key's. */
export function readerIndex(config: SluiceConfig): ReaderIndex {
  let index = indexes.get(config);
  if (index) return index;
  const built = new Map<string, Principal>();
  for (const t of config.tenants) for (const sha of t.readKeySha256 ?? []) if (!built.has(sha)) built.set(sha, { role: 'tenant', tenant: t.id });
  for (const sha of config.admin.keySha256) built.set(sha, ADMIN);
  indexes.set(config, built);
  index = built;
  return index;
}

/**
 * The principal an `Authorization` header names.
 *
 * @throws SluiceError missing_api_key (no header, or not `Bearer <key>`) | invalid_api_key
 * @example
 * principalOf(readerIndex(config), request.headers.authorization) // { role: 'tenant', tenant: 'acme' }
 */
export function principalOf(index: ReaderIndex, authorization: string | undefined): Principal {
  const m = authorization ? /^Bearer\s+(\S+)\s*$/i.exec(authorization) : null;
  if (!m) throw new SluiceError('missing_api_key', 'No API key provided. Send an admin key or a tenant read key as "Authorization: Bearer <key>".');
  const principal = index.get(hashKey(m[1]!));
  if (!principal) throw new SluiceError('invalid_api_key', 'The key is neither an admin key nor a tenant read key of this ledger.');
  return principal;
}

/**
 * The tenant a query is limited to: what an admin asked for (undefined: every tenant); a read
 * key's own tenant, whether or not it asked for it.
 *
 * @throws SluiceError permission_denied when a read key asks for another tenant
 */
export function tenantScope(principal: Principal, asked: string | undefined): string | undefined {
  if (principal.role === 'admin') return asked;
  if (asked !== undefined && asked !== principal.tenant) {
    throw new SluiceError('permission_denied', `This key reads tenant ${principal.tenant} only; it may not read tenant ${asked}.`);
  }
  return principal.tenant;
}

/**
 * Whether a principal may see one request's timeline. A read key gets the same 404 for another
 * tenant's request as for an unknown id: ids of other tenants' requests are not revealed.
 */
export function maySeeRequest(principal: Principal, tenant: string | null): boolean {
  return principal.role === 'admin' || principal.tenant === tenant;
}

/** @throws SluiceError permission_denied unless the principal is an admin */
export function requireAdmin(principal: Principal): void {
  if (principal.role !== 'admin') throw new SluiceError('permission_denied', 'This is the admin API; it takes an admin key, not a tenant read key.');
}
