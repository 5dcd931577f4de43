import type { KV } from '@nats-io/kv';
import { DEFAULT_PUBLISH_RETRY_MS, encodeJson, getJson, retryFor } from '@sluice/bus';
import { asStoredAnswer, type StoredAnswer } from './replay.js';

/** Terminal answers by request id, for redeliveries (see `StoredAnswer`). */
export interface ResultStore {
  get(requestId: string): Promise<StoredAnswer | undefined>;
  put(answer: StoredAnswer): Promise<void>;
}

/** The store on the `sluice_results` bucket; its TTL (1 h) is the bucket's. */
export function kvResultStore(kv: KV, retryForMs = DEFAULT_PUBLISH_RETRY_MS): ResultStore {
  return {
    get: async (requestId) => asStoredAnswer((await getJson<unknown>(kv, requestId))?.value),
    // retried like publishEvent: through a nats-server restart the write failed fast ("no
    // responders"), the input was redelivered without a stored answer, and the upstream served twice
    put: async (answer) => {
      await retryFor(retryForMs, () => kv.put(answer.requestId, encodeJson(answer)));
    },
  };
}
