import { consumeEvents, encodeJson, getJson, publishEvent, sendReply, PoisonMessage, traceOf, type ServiceContext } from '@sluice/bus';
import { Subjects, Topology, type AnyEvent } from '@sluice/contracts';
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
    durable: Topology.consumers.cacheLookup,
    filter: Subjects.eventsOf('chat.admitted'),
    concurrency: LOOKUP_CONCURRENCY,
    // a request nobody waits for any more ends here (chat.failed) instead of going on
    failPastDeadline: true,
    log,
    handler: async (event: AnyEvent, delivery) => {
      if (event.type !== 'chat.admitted') throw new PoisonMessage(`cache lookup got ${event.type}`);
      const request = event.data.ctx.request;
      const key = request.cache === 'skip' ? undefined : cacheKey(event.tenant, request);
      const entry = key ? asEntry((await getJson<unknown>(buckets.cache, key))?.value) : undefined;
      const decision = decideLookup(event, key, entry, Date.now());
      await publishEvent(bus.js, decision.event, traceOf(delivery));
      for (const reply of decision.replies) sendReply(bus.nc, event.data.ctx.replyTo, reply);
    },
  });

  const store = await consumeEvents(bus, {
    durable: Topology.consumers.cacheStore,
    filter: Subjects.eventsOf('chat.completed'),
    concurrency: STORE_CONCURRENCY,
    log,
    handler: async (event: AnyEvent, delivery) => {
      if (event.type !== 'chat.completed') throw new PoisonMessage(`cache store got ${event.type}`);
      const decision = decideStore(event, ttlSeconds, Date.now());
      if (!decision) return;
      await buckets.cache.put(decision.key, encodeJson(decision.entry));
      await publishEvent(bus.js, decision.event, traceOf(delivery));
    },
  });

  return [lookup, store];
}
