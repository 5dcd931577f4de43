import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeJson(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

export function decodeJson<T>(bytes: Uint8Array): T {
  return JSON.parse(decoder.decode(bytes)) as T;
}

/** Reads a JSON value; undefined when the key is missing or deleted. */
export async function getJson<T>(kv: KV, key: string): Promise<{ value: T; revision: number } | undefined> {
  const e = await kv.get(key);
  if (!e || e.operation !== 'PUT' || e.length === 0) return undefined;
  return { value: decodeJson<T>(e.value), revision: e.revision };
}

/**
 * Read-modify-write with compare-and-set: `change` gets the current value (undefined if none)
 * and returns the next one; on a concurrent write it runs again on the fresh value. Returns the
 * value written. Several replicas may update the same key safely.
 */
export async function casUpdate<T>(kv: KV, key: string, change: (current: T | undefined) => T, maxTries = 20): Promise<T> {
  for (let i = 0; i < maxTries; i++) {
    const current = await getJson<T>(kv, key);
    const next = change(current?.value);
    try {
      if (current) await kv.update(key, encodeJson(next), current.revision);
      else await kv.create(key, encodeJson(next));
      return next;
    } catch (e) {
      if (!isWrongRevision(e)) throw e;
    }
  }
  throw new Error(`casUpdate(${key}): too much contention`);
}

/**
 * True for the errors a lost compare-and-set race produces: JetStream refusing the write's
 * expected last sequence. `kv.update` and `kv.create` (on a key that exists) both reject with
 * it; a clustered stream answers 10164 instead of 10071 while an earlier write of the subject is
 * still being proposed. Matched on the API code, not the message text, which servers may reword.
 */
export function isWrongRevision(e: unknown): boolean {
  return (
    e instanceof JetStreamApiError && (e.code === JetStreamApiCodes.StreamWrongLastSequence || e.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}
