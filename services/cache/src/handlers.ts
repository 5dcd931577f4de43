import { decided, encodeJson, getJson, NOTHING, type Decided, type Emitted, type Received } from '@sluice/bus';
import type { Consumers } from '@sluice/contracts';
import type { KV } from '@nats-io/kv';
import { decideLookup, decideStore } from './cache.js';
import { asEntry } from './entry.js';

type Lookup = typeof Consumers.cacheLookup;
type Store = typeof Consumers.cacheStore;

export interface CacheDeps {
  /** `sluice_cache`: entries under `<tenant>.<sha256>`. */
  cache: KV;
  /** The bucket TTL in force (`followCacheTtl`), written into each `cache.stored`. */
  ttlSeconds: () => number;
  now?: () => number;
}

/**
 * chat.admitted -> cache.hit (terminal: the answer goes to ctx.replyTo) | cache.missed (with the
 * key ingress computed, or without one for `cache: 'skip'`). One KV read; the decision is `decideLookup`'s.
 */
export function onChatAdmitted(deps: CacheDeps) {
  const now = deps.now ?? Date.now;
  return async (event: Received<Lookup>): Promise<Decided<Emitted<Lookup>>> => {
    const { ctx } = event.data;
    const key = ctx.request.cache === 'skip' ? undefined : ctx.request.cacheKey;
    // the key was computed at ingress and names its tenant: never read another tenant's entry
    const entry = key?.startsWith(`${event.tenant}.`) ? asEntry((await getJson<unknown>(deps.cache, key))?.value) : undefined;
    const decision = decideLookup(event, entry, now());
    return decided(
      [decision.event],
      decision.replies.map((reply) => ({ to: ctx.replyTo, reply })),
    );
  };
}

/** chat.completed -> the entry written, then cache.stored (whole answers with a cache key only). */
export function onChatCompleted(deps: CacheDeps) {
  const now = deps.now ?? Date.now;
  return async (event: Received<Store>): Promise<Decided<Emitted<Store>>> => {
    const decision = decideStore(event, deps.ttlSeconds(), now());
    if (!decision) return NOTHING;
    // the entry is the cache's own state, written before the event that says it was stored
    await deps.cache.put(decision.key, encodeJson(decision.entry));
    return decided([decision.event]);
  };
}
