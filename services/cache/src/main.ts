import { consumeEvents, runService } from '@sluice/bus';
import { Consumers, ServiceName } from '@sluice/contracts';
import { Coalescer } from './coalesce.js';
import { onChatAdmitted, onChatCompleted } from './handlers.js';
import { Embedder } from './semantic/embed.js';
import { SemanticIndex } from './semantic/index.js';
import { followSemanticBucket } from './semantic/sync.js';
import { followCacheTtl } from './ttl.js';

// cache: chat.admitted -> cache.hit (exact or semantic; terminal, the answer sent to ctx.replyTo) |
// cache.coalesced (terminal: an identical request in flight answered it) | cache.missed;
// chat.completed -> the entry in sluice_cache, then cache.stored, and a leader's answer to its
// followers (sluice_inflight). Every replica follows sluice_semantic into its own index.
// Metrics: /metrics on SLUICE_METRICS_PORT (9472 under npm start; runService, docs/metrics.md).
await runService(ServiceName.Cache, async ({ bus, buckets, control, log, env }) => {
  // the buckets' max age is the TTL (nats-server 2.9 has none per message): set now and on each config change
  const ttlSeconds = await followCacheTtl(bus.jsm, control, log);
  const index = new SemanticIndex();
  // every entry any replica wrote, before the first lookup: a restarted replica rebuilds its index here
  const sync = await followSemanticBucket(buckets.semantic, index, log);
  await sync.ready;
  const coalescer = new Coalescer({ kv: buckets.inflight, nc: bus.nc, leaderTimeoutMs: () => control.config().cache.coalesce.leaderTimeoutMs, log });
  await coalescer.start();
  const deps = {
    cache: buckets.cache,
    ttlSeconds,
    config: control.config,
    coalescer,
    semantic: { bus, cache: buckets.cache, semantic: buckets.semantic, index, embedder: new Embedder(env) },
  };
  return [
    sync,
    coalescer,
    await consumeEvents(bus, {
      consumer: Consumers.cacheLookup,
      // Followers of a coalesced key hold their slot while they wait for their leader's answer (a
      // timer and a set entry each): with 256 slots a launch-day spike of one question would stall
      // every other tenant's lookups until its leader answered. A lookup is a KV read, and for
      // semantic tenants an embedding call and a search, so a deep window costs little.
      concurrency: 4096,
      // a request nobody waits for any more ends here (chat.failed) instead of going on
      failPastDeadline: true,
      log,
      handler: onChatAdmitted(deps),
    }),
    await consumeEvents(bus, {
      consumer: Consumers.cacheStore,
      concurrency: 64,
      log,
      handler: onChatCompleted(deps),
    }),
  ];
});
