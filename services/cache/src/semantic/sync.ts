import type { KV } from '@nats-io/kv';
import type { Logger } from '@sluice/telemetry';
import { decodeEntry } from './entry.js';
import type { SemanticIndex } from './index.js';

export interface SemanticFollow {
  /** Resolves once the bucket's values as of the start are in the index (or after LOAD_TIMEOUT_MS, with a warning). */
  ready: Promise<void>;
  /** Stops watching and sweeping; the index keeps what it has. */
  stop(): Promise<void>;
}

export interface SemanticFollowOptions {
  /** How often expired entries are dropped from the index. Default 30 s. */
  sweepEveryMs?: number;
}

/** Past this, `ready` resolves with the bucket not all read rather than never (the watch keeps loading behind it). */
const LOAD_TIMEOUT_MS = 15_000;
const SWEEP_EVERY_MS = 30_000;

/**
 * Keeps `index` equal to the `sluice_semantic` bucket: watches every key from the start (the last
 * value of each, then every change), upserts each decoded entry, removes on delete and purge, and
 * sweeps expired entries every 30 s (the bucket's max age drops them from the stream without a
 * delete marker, so the watch never says). Every replica does this, so an entry written by one is
 * found by all within a watch delivery, and a restarted replica rebuilds its index from the bucket.
 * A value that does not decode, or whose key's first token (the tenant of the exact key) is not
 * `entry.tenant`, is skipped with a debug log and drops what the key held before: a tenant can
 * only ever reach its own partitions.
 *
 * @example
 * const index = new SemanticIndex();
 * const follow = await followSemanticBucket(buckets.semantic, index, log);
 * await follow.ready;
 */
export async function followSemanticBucket(kv: KV, index: SemanticIndex, log: Logger, opts: SemanticFollowOptions = {}): Promise<SemanticFollow> {
  const started = performance.now();
  let loaded: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (loaded = resolve));
  // the watch says nothing when the bucket is empty, so an empty bucket is loaded at once
  if ((await kv.status()).values === 0) loaded();
  const watcher = await kv.watch({ key: '>' });
  let skipped = 0;
  const done = (async () => {
    for await (const e of watcher) {
      if (e.operation !== 'PUT') index.remove(e.key);
      else {
        const entry = decodeEntry(e.value);
        const tenant = e.key.split('.', 1)[0];
        if (entry && entry.tenant === tenant) index.upsert(e.key, entry);
        else {
          index.remove(e.key);
          skipped++;
          log.debug(
            { key: e.key, revision: e.revision, reason: entry ? `entry.tenant ${entry.tenant} is not the key's` : 'malformed' },
            'semantic entry skipped',
          );
        }
      }
      // the last of the initial values comes with delta 0 (and isUpdate); a live update means they are all in
      if (e.isUpdate || e.delta === 0) loaded();
    }
  })().catch((err: unknown) => log.error({ err }, 'the semantic bucket watch failed; the index stops following it'));
  const timer = setTimeout(() => {
    log.warn({ entries: index.size() }, 'semantic entries still loading; going on without all of them');
    loaded();
  }, LOAD_TIMEOUT_MS);
  void ready.then(() => {
    clearTimeout(timer);
    log.info({ entries: index.size(), skipped, ms: Math.round(performance.now() - started) }, 'semantic index loaded');
  });
  const sweeper = setInterval(() => {
    const dropped = index.sweep(Date.now());
    if (dropped > 0) log.debug({ dropped, entries: index.size() }, 'expired semantic entries swept');
  }, opts.sweepEveryMs ?? SWEEP_EVERY_MS);
  sweeper.unref();
  return {
    ready,
    async stop() {
      clearInterval(sweeper);
      clearTimeout(timer);
      watcher.stop();
      await done;
    },
  };
}
