import type { Buckets } from '@sluice/bus';
import { isVirtualKey } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import { emptyKeyIndex, putKey, removeKey, type KeyIndex } from './keys.js';

export interface KeyWatch {
  /** The index as of the last change seen in the bucket. */
  index(): KeyIndex;
  stop(): void;
}

/** Past this, ingress starts without the whole bucket loaded rather than not at all (it keeps loading). */
const LOAD_TIMEOUT_MS = 10_000;

/**
 * Keeps an index of the `sluice_keys` bucket: every replica watches it, so a key created,
 * rotated or revoked through the admin API applies in every replica within a watch delivery
 * (milliseconds). Resolves once the bucket's current keys are loaded, so a restarted replica
 * does not refuse keys it has not read yet. A record that fails the schema is logged and
 * skipped (its earlier version is dropped: a key that cannot be read is refused).
 *
 * @example
 * const keys = await watchKeys(buckets.keys, log);
 * findKey(keys.index(), hashKey(key), Date.now());
 */
export async function watchKeys(kv: Buckets['keys'], log: Logger): Promise<KeyWatch> {
  const index = emptyKeyIndex();
  const pending = (await kv.status()).values;
  let loaded: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (loaded = resolve));
  if (pending === 0) loaded();
  const watcher = await kv.watch();
  void (async () => {
    for await (const e of watcher) {
      if (e.operation === 'PUT') {
        const value = parse(e.value);
        if (isVirtualKey(value) && value.id === e.key) putKey(index, value);
        else {
          removeKey(index, e.key);
          log.error({ key: e.key, revision: e.revision }, 'ignoring an invalid virtual key record');
        }
      } else {
        removeKey(index, e.key);
      }
      // delta counts what is left of the initial values; 0 (or a live update) means loaded
      if (e.isUpdate || e.delta === 0) loaded();
    }
  })();
  const timer = setTimeout(() => {
    log.warn({ loaded: index.byId.size, of: pending }, 'virtual keys still loading; starting without all of them');
    loaded();
  }, LOAD_TIMEOUT_MS);
  await ready;
  clearTimeout(timer);
  log.info({ keys: index.byId.size }, 'virtual keys loaded');
  return { index: () => index, stop: () => watcher.stop() };
}

const decoder = new TextDecoder();

function parse(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(decoder.decode(bytes));
  } catch {
    return undefined;
  }
}
