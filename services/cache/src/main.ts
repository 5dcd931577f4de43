import { consumeEvents, runService } from '@sluice/bus';
import { Consumers, ServiceName } from '@sluice/contracts';
import { onChatAdmitted, onChatCompleted } from './handlers.js';
import { followCacheTtl } from './ttl.js';

// cache: chat.admitted -> cache.hit (terminal, the answer sent to ctx.replyTo) | cache.missed;
// chat.completed -> the entry in sluice_cache, then cache.stored. Replicas share both durables.
await runService(ServiceName.Cache, async ({ bus, buckets, control, log }) => {
  // the bucket's max age is the TTL (nats-server 2.9 has none per message): set now and on each config change
  const ttlSeconds = await followCacheTtl(bus.jsm, control, log);
  const deps = { cache: buckets.cache, ttlSeconds };
  return [
    await consumeEvents(bus, {
      consumer: Consumers.cacheLookup,
      // one KV read each
      concurrency: 256,
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
