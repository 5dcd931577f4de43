import type { KV } from '@nats-io/kv';
import { encodeJson, getJson } from '@sluice/bus';
import type { StoredAnswer } from './replay.js';

/** Terminal answers by request id, for redeliveries (see `StoredAnswer`). */
export interface ResultStore {
  get(requestId: string): Promise<StoredAnswer | undefined>;
  put(answer: StoredAnswer): Promise<void>;
}

/** The store on the `sluice_results` bucket; its TTL (1 h) is the bucket's. */
export function kvResultStore(kv: KV): ResultStore {
  return {
    get: async (requestId) => (await getJson<StoredAnswer>(kv, requestId))?.value,
    put: async (answer) => {
      await kv.put(answer.requestId, encodeJson(answer));
    },
  };
}
