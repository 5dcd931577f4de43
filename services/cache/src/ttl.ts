import { nanos, millis } from '@nats-io/transport-node';
import type { JetStreamManager } from '@nats-io/jetstream';
import { Topology } from '@sluice/contracts';

/** The stream behind a KV bucket. */
const CACHE_STREAM = `KV_${Topology.buckets.cache.name}`;

/**
 * Makes the cache bucket's TTL `seconds` and returns the TTL in force. nats-server 2.9 has no
 * per-message TTL, so the TTL is the bucket stream's max age: it is set when the bucket is first
 * created (`Topology.buckets.cache.ttlSeconds`, before any config is known) and changing
 * `config.cache.ttlSeconds` later needs this update. It applies to entries already stored too.
 * Idempotent, so every replica may call it.
 *
 * @example
 * await ensureCacheTtl(bus.jsm, config.cache.ttlSeconds);
 */
export async function ensureCacheTtl(jsm: JetStreamManager, seconds: number): Promise<number> {
  const info = await jsm.streams.info(CACHE_STREAM);
  const maxAge = nanos(seconds * 1000);
  if (info.config.max_age === maxAge) return seconds;
  // the server refuses a duplicate window longer than the max age
  const duplicateWindow = Math.min(info.config.duplicate_window, maxAge);
  const updated = await jsm.streams.update(CACHE_STREAM, { max_age: maxAge, duplicate_window: duplicateWindow });
  return Math.round(millis(updated.config.max_age) / 1000);
}
