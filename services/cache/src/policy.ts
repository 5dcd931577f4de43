import type { CachePolicy, ChatRequest, SluiceConfig, Tenant } from '@sluice/contracts';

const tenantsOf = new WeakMap<SluiceConfig, Map<string, Tenant>>();

/** A tenant's config, from a map built once per config (the config object changes on every update). */
function tenantOf(config: SluiceConfig, id: string): Tenant | undefined {
  let byId = tenantsOf.get(config);
  if (!byId) {
    byId = new Map(config.tenants.map((t) => [t.id, t]));
    tenantsOf.set(config, byId);
  }
  return byId.get(id);
}

/** The tenant's cache policy: `config.cache.policy` with the tenant's own choices over it. */
export function policyFor(config: SluiceConfig, tenant: string): CachePolicy {
  return { ...config.cache.policy, ...tenantOf(config, tenant)?.cache?.policy };
}

/**
 * How long an answer is served, in seconds: the shortest of the request's `x-sluice-cache-ttl`,
 * the tenant's `cache.ttlSeconds` and the bucket's max age (`bucketTtlSeconds`, the longest any
 * entry is kept; nats-server 2.9 has no per-message TTL, so shorter ones are the entry's own
 * `expiresAt`).
 */
export function ttlFor(config: SluiceConfig, tenant: string, request: Pick<ChatRequest, 'cacheTtlSeconds'>, bucketTtlSeconds: number): number {
  return Math.min(request.cacheTtlSeconds ?? Infinity, tenantOf(config, tenant)?.cache?.ttlSeconds ?? Infinity, bucketTtlSeconds);
}

/** The tenant's semantic threshold when it opted in to the semantic cache; undefined when it did not. */
export function semanticThreshold(config: SluiceConfig, tenant: string): number | undefined {
  const s = tenantOf(config, tenant)?.cache?.semantic;
  return s?.enabled ? (s.threshold ?? config.cache.semantic.threshold) : undefined;
}
