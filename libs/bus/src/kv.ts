import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import type { KV, KvEntry } from '@nats-io/kv';
import type { Logger } from '@sluice/telemetry';
// kv-once.ts imports isWrongRevision from here: a cycle of functions only, called after both load
import { createOnce, updateOnce } from './kv-once.js';

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
 * value written. Several replicas may update the same key safely, on a NATS cluster too: the
 * writes are `createOnce`/`updateOnce` (kv-once.ts; docs/cluster.md).
 */
export async function casUpdate<T>(kv: KV, key: string, change: (current: T | undefined) => T, maxTries = 20): Promise<T> {
  for (let i = 0; i < maxTries; i++) {
    const current = await getJson<T>(kv, key);
    const next = change(current?.value);
    try {
      if (current) await updateOnce(kv, key, encodeJson(next), current.revision);
      else await createOnce(kv, key, encodeJson(next));
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

/** A bucket followed into memory (`followBucket`). */
export interface Followed {
  /** False when `loadTimeoutMs` passed before every entry present at the start was seen. */
  loaded: boolean;
  stop(): void;
}

/**
 * Follows a KV bucket from its start: `onEntry` sees every entry there now, then every change
 * (puts and deletes), in the watch's order. Resolves once the entries present at the start have
 * been seen (an empty bucket's watch says nothing, so that is checked first), or, with
 * `loadTimeoutMs`, after that long with what came. A watch that fails is logged as `what`'s.
 *
 * @example
 * const followed = await followBucket(buckets.keys, (e) => apply(e), { log, what: 'virtual keys' });
 */
export async function followBucket(kv: KV, onEntry: (e: KvEntry) => void, opts: { log: Logger; what: string; loadTimeoutMs?: number }): Promise<Followed> {
  let loaded: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (loaded = resolve));
  if ((await kv.status()).values === 0) loaded();
  const watcher = await kv.watch();
  const followed: Followed = { loaded: false, stop: () => watcher.stop() };
  void (async () => {
    for await (const e of watcher) {
      onEntry(e);
      // delta counts what is left of the initial values; 0 (or a live update) means loaded
      if (e.isUpdate || e.delta === 0) loaded();
    }
  })().catch((err: unknown) => opts.log.error({ err }, `the ${opts.what} watch failed`));
  let timer: NodeJS.Timeout | undefined;
  const timedOut =
    opts.loadTimeoutMs === undefined
      ? new Promise<never>(() => undefined)
      : new Promise<false>((r) => (timer = setTimeout(() => r(false), opts.loadTimeoutMs)));
  followed.loaded = await Promise.race([ready.then(() => true), timedOut]);
  clearTimeout(timer);
  return followed;
}
