import { createHash } from 'node:crypto';

/** SHA-256 hex of a tenant key, as stored in config. */
export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/**
 * The `sluice_idempotency` bucket key of a tenant's `Idempotency-Key`: SHA-256 hex of the tenant,
 * a NUL and the key, so any key is a valid KV key and tells nothing.
 */
export function idempotencyBucketKey(tenant: string, key: string): string {
  return createHash('sha256').update(tenant).update('\0').update(key).digest('hex');
}
