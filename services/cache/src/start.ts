import { consumeEvents, decided, encodeJson, getJson, NOTHING, type ServiceContext } from '@sluice/bus';
import { Consumers } from '@sluice/contracts';
import { decideLookup, decideStore } from './cache.js';
import { asEntry } from './entry.js';
import { cacheKey } from './key.js';
import { ensureCacheTtl } from './ttl.js';

/** Lookups are one KV read each; stores are rarer. Bounds on messages in flight across replicas. */
const LOOKUP_CONCURRENCY = 256;
const STORE_CONCURRENCY = 64;

/**
 * The cache service:
 *   chat.admitted  -> cache.hit (terminal; answer sent to ctx.replyTo) | cache.missed (with the key)
 *   chat.completed -> cache.stored (whole answers with a cache key only)
 * Replicas share both durables. Entries live in `sluice_cache` under `<tenant>.<sha256>`; the
 * bucket TTL follows `config.cache.ttlSeconds`.
 */
export async function startCache(ctx: ServiceContext) {
  const { bus, buckets, control, log } = ctx;
  let ttlSeconds = await ensureCacheTtl(bus.jsm, control.config().cache.ttlSeconds);
  control.onChange(() => {
    const wanted = control.config().cache.ttlSeconds;
    if (wanted === ttlSeconds) return;
    ensureCacheTtl(bus.jsm, wanted)
      .then((applied) => {
        ttlSeconds = applied;
        log.info({ ttlSeconds }, 'cache ttl applied');
      })
      .catch((err: unknown) => log.error({ err, ttlSeconds: wanted }, 'could not change the cache ttl'));
  });

  const lookup = await consumeEvents(bus, {
    consumer: Consumers.cacheLookup,
    concurrency: LOOKUP_CONCURRENCY,
    // a request nobody waits for any more ends here (chat.failed) instead of going on
    failPastDeadline: true,
    log,
    handler: async (event) => {
      const request = event.data.ctx.request;
      const key = request.cache === 'skip' ? undefined : cacheKey(event.tenant, request);
      const entry = key ? asEntry((await getJson<unknown>(buckets.cache, key))?.value) : undefined;
      const decision = decideLookup(event, key, entry, Date.now());
      return decided([decision.event], decision.replies.map((reply) => ({ to: event.data.ctx.replyTo, reply })));
    },
  });

  const store = await consumeEvents(bus, {
    consumer: Consumers.cacheStore,
    concurrency: STORE_CONCURRENCY,
    log,
    handler: async (event) => {
      const decision = decideStore(event, ttlSeconds, Date.now());
      if (!decision) return NOTHING;
      // the entry is the cache's own state, written before the event that says it was stored
      await buckets.cache.put(decision.key, encodeJson(decision.entry));
      return decided([decision.event]);
    },
  });

  return [lookup, store];
}
