import { nanos, millis } from '@nats-io/transport-node';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { Control } from '@sluice/bus';
import { Topology } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';

/** The streams behind the buckets whose max age is the cache's TTL: answers, and the semantic entries that point at them. */
const STREAMS = [`KV_${Topology.buckets.cache.name}`, `KV_${Topology.buckets.semantic.name}`];

/**
 * Makes the cache buckets' TTL `seconds` (`sluice_cache` and `sluice_semantic`) and returns the TTL
 * in force. nats-server 2.9 has no per-message TTL, so the TTL is the bucket stream's max age
 * (shorter ones, per tenant or request, are each entry's own `expiresAt`): it is set when the bucket is first
 * created (`Topology.buckets.cache.ttlSeconds`, before any config is known) and changing
 * `config.cache.ttlSeconds` later needs this update. It applies to entries already stored too.
 * Idempotent, so every replica may call it.
 *
 * @example
 * await ensureCacheTtl(bus.jsm, config.cache.ttlSeconds);
 */
export async function ensureCacheTtl(jsm: JetStreamManager, seconds: number): Promise<number> {
  const [applied] = await Promise.all(STREAMS.map((stream) => ensureMaxAge(jsm, stream, seconds)));
  return applied!;
}

async function ensureMaxAge(jsm: JetStreamManager, stream: string, seconds: number): Promise<number> {
  const info = await jsm.streams.info(stream);
  const maxAge = nanos(seconds * 1000);
  if (info.config.max_age === maxAge) return seconds;
  // the server refuses a duplicate window longer than the max age
  const duplicateWindow = Math.min(info.config.duplicate_window, maxAge);
  const updated = await jsm.streams.update(stream, { max_age: maxAge, duplicate_window: duplicateWindow });
  return Math.round(millis(updated.config.max_age) / 1000);
}

/**
 * Applies `config.cache.ttlSeconds` now and again after every config change, and returns the TTL
 * in force. A change that fails is logged and the old TTL stays (entries keep their old life).
 *
 * @example
 * const ttlSeconds = await followCacheTtl(bus.jsm, control, log);
 */
export async function followCacheTtl(jsm: JetStreamManager, control: Control, log: Logger): Promise<() => number> {
  let ttlSeconds = await ensureCacheTtl(jsm, control.config().cache.ttlSeconds);
  control.onChange(() => {
    const wanted = control.config().cache.ttlSeconds;
    if (wanted === ttlSeconds) return;
    ensureCacheTtl(jsm, wanted)
      .then((applied) => {
        ttlSeconds = applied;
        log.info({ ttlSeconds }, 'cache ttl applied');
      })
      .catch((err: unknown) => log.error({ err, ttlSeconds: wanted }, 'could not change the cache ttl'));
  });
  return () => ttlSeconds;
}
