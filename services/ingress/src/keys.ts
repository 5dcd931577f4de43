import type { RequestKey, VirtualKey } from '@sluice/contracts';
import { RequestRejected } from './rejection.js';

/**
 * Virtual keys (issue 11) by the SHA-256 of their key and, during a rotation's grace period, of
 * the previous key too: a key is checked with the one hash ingress already computed and one map
 * lookup. Revoked and expired keys stay in the index, so they are refused with `key_expired`
 * rather than `invalid_api_key`. Kept in sync with the `sluice_keys` bucket by keys-watch.ts.
 */
export interface KeyIndex {
  readonly byId: ReadonlyMap<string, VirtualKey>;
  readonly bySha: ReadonlyMap<string, VirtualKey>;
}

/** A mutable index; only the bucket's watcher writes it. */
export interface KeyIndexWriter extends KeyIndex {
  readonly byId: Map<string, VirtualKey>;
  readonly bySha: Map<string, VirtualKey>;
}

export function emptyKeyIndex(): KeyIndexWriter {
  return { byId: new Map(), bySha: new Map() };
}

/** Adds or replaces a key; the hashes of its earlier version stop matching. */
export function putKey(index: KeyIndexWriter, key: VirtualKey): void {
  removeKey(index, key.id);
  index.byId.set(key.id, key);
  index.bySha.set(key.sha256, key);
  if (key.previousSha256 !== undefined) index.bySha.set(key.previousSha256, key);
}

export function removeKey(index: KeyIndexWriter, id: string): void {
  const old = index.byId.get(id);
  if (!old) return;
  index.byId.delete(id);
  // a hash is removed only while it still points at this key (never another key's)
  for (const sha of [old.sha256, old.previousSha256]) if (sha !== undefined && index.bySha.get(sha)?.id === id) index.bySha.delete(sha);
}

/**
 * The virtual key a key hash belongs to, if it may be used at `now`; undefined when the hash is
 * no virtual key's.
 *
 * @throws RequestRejected key_expired: the key was revoked, is past its `expiresAt`, or is the
 *   previous key of a rotation whose grace period is over.
 */
export function findKey(index: KeyIndex, sha256: string, now: number): VirtualKey | undefined {
  const key = index.bySha.get(sha256);
  if (!key) return undefined;
  if (key.revokedAt !== undefined) throw new RequestRejected('key_expired', `The API key ${key.id} was revoked.`);
  if (key.expiresAt !== undefined && now >= key.expiresAt) throw new RequestRejected('key_expired', `The API key ${key.id} expired.`);
  if (sha256 !== key.sha256 && !(key.previousExpiresAt !== undefined && now < key.previousExpiresAt)) {
    throw new RequestRejected('key_expired', `The API key ${key.id} was rotated; use its new key.`);
  }
  return key;
}

/** What the pipeline carries of a virtual key (`ctx.key`): the limiter applies its limits and budget. */
export function requestKey(key: VirtualKey): RequestKey {
  return { id: key.id, ...(key.limits ? { limits: key.limits } : {}), ...(key.budget ? { budget: key.budget } : {}) };
}

/**
 * Checks that a virtual key may name the model: its `models` narrow the tenant's (which
 * `checkModel` checks). `auto` always may, as for a tenant: the router picks among the tiers.
 *
 * @throws RequestRejected model_not_allowed
 */
export function checkKeyModel(key: Pick<VirtualKey, 'id' | 'models'> | undefined, model: string, user?: string): void {
  if (!key?.models || model === 'auto' || key.models.includes(model)) return;
  throw new RequestRejected('model_not_allowed', `The API key ${key.id} may not use the model ${JSON.stringify(model)}.`, 'model', {
    model,
    ...(user !== undefined ? { user } : {}),
  });
}
