import { createHash } from 'node:crypto';

/** KV keys of a request's buckets in `sluice_limits`. */
export type LimitKeys = { user?: string; key?: string; tenant: string; global: string };

/**
 * `g`, `t.<tenant>`, `u.<tenant>.<sha1(user), 16 hex>`, `k.<tenant>.<key id>`: user ids are
 * arbitrary strings and KV keys are not; 64 bits of hash make a collision between two users of
 * one tenant negligible. A virtual key's id is KV-safe already (`key_` and 20 alphanumerics).
 */
export function limitKeys(tenant: string, user?: string, keyId?: string): LimitKeys {
  const keys: LimitKeys = { tenant: `t.${tenant}`, global: 'g' };
  if (user !== undefined) keys.user = `u.${tenant}.${createHash('sha1').update(user, 'utf8').digest('hex').slice(0, 16)}`;
  if (keyId !== undefined) keys.key = `k.${tenant}.${keyId}`;
  return keys;
}
