import { followBucket, type Buckets } from '@sluice/bus';
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
  const followed = await followBucket(
    kv,
    (e) => {
      if (e.operation === 'PUT') {
        const value = parse(e.value);
        if (isVirtualKey(value) && value.id === e.key) return putKey(index, value);
        log.error({ key: e.key, revision: e.revision }, 'ignoring an invalid virtual key record');
      }
      removeKey(index, e.key);
    },
    { log, what: 'virtual keys', loadTimeoutMs: LOAD_TIMEOUT_MS },
  );
  if (followed.loaded) log.info({ keys: index.byId.size }, 'virtual keys loaded');
  else log.warn({ loaded: index.byId.size }, 'virtual keys still loading; starting without all of them');
  return { index: () => index, stop: () => followed.stop() };
}

const decoder = new TextDecoder();

function parse(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(decoder.decode(bytes));
  } catch {
    return undefined;
  }
}
