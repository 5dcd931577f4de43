import { createOnce, decodeJson, encodeJson, followBucket, isWrongRevision, updateOnce, type Buckets } from '@sluice/bus';
import { isBatchRecord, RUNNING_BATCH_STATUSES, type BatchRecord } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';

/** A record and the revision it was read at: what a compare-and-set writes against. */
export interface Revised {
  record: BatchRecord;
  revision: number;
}

/**
 * The `sluice_batches` bucket as ingress uses it: written only by compare-and-set (`createOnce`,
 * `updateOnce`: one writer wins on a cluster too, docs/cluster.md), and watched,
 * so every replica's runner and the list route see each batch as it is now without listing keys.
 */
export interface BatchStore {
  /** Writes a new batch; its id is new, so this never overwrites one. */
  create(record: BatchRecord): Promise<void>;
  /** The batch as the bucket has it now (one read), undefined for an unknown id or another tenant's. */
  get(tenant: string, id: string): Promise<Revised | undefined>;
  /** A page of the tenant's batches, newest first, after the batch `after` (an id not in the list: from the start). */
  list(tenant: string, after: string | undefined, limit: number): { data: BatchRecord[]; hasMore: boolean };
  /** The batches that still have work, as last seen by the watch. */
  running(): Revised[];
  /** Compare-and-set: the new revision, or undefined when the record changed since `revision` (someone else moved it). */
  write(record: BatchRecord, revision: number): Promise<number | undefined>;
  stop(): void;
}

const BATCH_ID = /^batch_[a-z2-7]{24}$/;

/**
 * Opens the store and loads the bucket's batches before resolving, so a restarted replica's
 * runner goes on with every running batch at once. A record that fails the schema is logged and
 * left alone.
 */
export async function openBatchStore(kv: Buckets['batches'], log: Logger): Promise<BatchStore> {
  const all = new Map<string, Revised>();
  const followed = await followBucket(
    kv,
    (e) => {
      if (e.operation === 'PUT') {
        const value = parse(e.value);
        if (isBatchRecord(value)) {
          // a slower watch delivery must not replace a newer record this replica wrote itself
          const known = all.get(e.key);
          if (!known || known.revision < e.revision) all.set(e.key, { record: value, revision: e.revision });
        } else log.error({ key: e.key, revision: e.revision }, 'ignoring an invalid batch record');
      } else all.delete(e.key);
    },
    { log, what: 'batches' },
  );
  log.info({ batches: all.size }, 'batches loaded');
  return {
    async create(record) {
      const revision = await createOnce(kv, record.id, encodeJson(record));
      remember(all, record, revision);
    },
    async get(tenant, id) {
      if (!BATCH_ID.test(id)) return undefined;
      const e = await kv.get(id);
      if (!e || e.operation !== 'PUT') return undefined;
      const record = parse(e.value);
      if (!isBatchRecord(record) || record.tenant !== tenant) return undefined;
      return { record, revision: e.revision };
    },
    list(tenant, after, limit) {
      const mine = [...all.values()]
        .map((r) => r.record)
        .filter((r) => r.tenant === tenant)
        .sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1));
      const start = after === undefined ? 0 : mine.findIndex((r) => r.id === after) + 1;
      return { data: mine.slice(start, start + limit), hasMore: start + limit < mine.length };
    },
    running() {
      return [...all.values()].filter((r) => RUNNING_BATCH_STATUSES.has(r.record.status));
    },
    async write(record, revision) {
      try {
        const next = await updateOnce(kv, record.id, encodeJson(record), revision);
        remember(all, record, next);
        return next;
      } catch (e) {
        if (isWrongRevision(e)) return undefined;
        throw e;
      }
    },
    stop: () => followed.stop(),
  };
}

function remember(all: Map<string, Revised>, record: BatchRecord, revision: number): void {
  const known = all.get(record.id);
  if (!known || known.revision < revision) all.set(record.id, { record, revision });
}

function parse(bytes: Uint8Array): unknown {
  try {
    return decodeJson(bytes);
  } catch {
    return undefined;
  }
}
