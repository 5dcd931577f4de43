import { Bucket, KvWatchInclude, type KV, type KvEntry } from '@nats-io/kv';
import { decodeJson } from '@sluice/bus';
import type { Logger } from '@sluice/telemetry';

/** A key as last seen: its JSON value (undefined: absent or deleted) and the revision a compare-and-set expects (0: never written). */
export interface Seen {
  value: unknown;
  revision: number;
}

/**
 * The keys of a KV bucket this replica has asked for, kept current by one watch of the bucket's
 * updates: a key is read once (a `get`), then every write to it (the ledger's, other replicas')
 * arrives by the watch, so reading it again costs no round trip. Only keys asked for are kept,
 * at most `max` (the least recently asked for go first): the watch starts with updates only, so
 * a bucket full of past windows' keys costs neither memory nor start-up time.
 *
 * A value may lag the bucket by the watch's delivery (well under a millisecond locally); a
 * compare-and-set against a lagging revision fails and the caller reads afresh (`refresh`).
 */
export class KvMirror {
  private readonly seen = new Map<string, Seen>();
  private readonly loading = new Map<string, Promise<Seen>>();
  private stopWatch: (() => void) | undefined;

  constructor(
    private readonly kv: KV,
    private readonly max = 10_000,
    private readonly log?: Logger,
  ) {}

  /** Starts the watch; values read before it started are not kept current, so call it first. */
  async start(): Promise<void> {
    const watcher = await this.kv.watch({ include: KvWatchInclude.UpdatesOnly });
    this.stopWatch = () => watcher.stop();
    void (async () => {
      for await (const e of watcher) if (this.seen.has(e.key) || this.loading.has(e.key)) this.observe(e.key, toSeen(e, this.log));
    })();
  }

  stop(): void {
    this.stopWatch?.();
  }

  /** The key's value, from memory when it has been read before. */
  get(key: string): Promise<Seen> {
    const known = this.seen.get(key);
    if (known) {
      // most recently used last: the bound drops the oldest first
      this.seen.delete(key);
      this.seen.set(key, known);
      return Promise.resolve(known);
    }
    return this.refresh(key);
  }

  /**
   * Reads the key from the bucket (after a lost compare-and-set, or the first time), and keeps
   * what the stream's leader said even when a later revision was known: after the kill of a
   * bucket's leader node, a replica's mirror held a revision 126 to 142 past the stream's last
   * sequence, so every compare-and-set expecting it was refused ("wrong last sequence") and its
   * batches gave up one after another until the end of the run (counters-cluster.int.spec.ts).
   */
  refresh(key: string): Promise<Seen> {
    let pending = this.loading.get(key);
    if (!pending) {
      pending = latest(this.kv, key)
        .then((e) => this.replace(key, e ? toSeen(e, this.log) : { value: undefined, revision: 0 }))
        .finally(() => this.loading.delete(key));
      this.loading.set(key, pending);
    }
    return pending;
  }

  /** Keeps `next` as the key's latest, most recently used; the oldest key goes past `max`. */
  private replace(key: string, next: Seen): Seen {
    this.seen.delete(key);
    this.seen.set(key, next);
    if (this.seen.size > this.max) this.seen.delete(this.seen.keys().next().value!);
    return next;
  }

  /** Keeps what a write or a read showed, unless a later revision is known already. */
  observe(key: string, next: Seen): Seen {
    const known = this.seen.get(key);
    if (known && known.revision > next.revision) return known;
    return this.replace(key, next);
  }
}

/**
 * The key's last entry as the stream's leader has it. A bucket made with `Kvm.create` on a server
 * with allow_direct (topology.ts's, on 2.9.10) answers `kv.get` by a direct get, which any
 * replica may answer: on a cluster it can be behind the leader, where a compare-and-set is
 * checked (8 to 11 % of reads after a lost race were, next to a leader read, in
 * counters-cluster.int.spec.ts), and a round on it is lost again. The stream's message get is
 * answered by its leader (one round trip, as the direct get). `Kvm.open` binds without direct.
 */
async function latest(kv: KV, key: string): Promise<KvEntry | null> {
  if (!(kv instanceof Bucket) || !kv.direct) return kv.get(key);
  const sm = await kv.jsm.streams.getMessage(kv.bucketName(), { last_by_subj: kv.subjectForKey(kv.encodeKey(key)) });
  return sm && kv.smToEntry(sm);
}

function toSeen(e: KvEntry, log?: Logger): Seen {
  if (e.operation !== 'PUT' || e.length === 0) return { value: undefined, revision: e.revision };
  try {
    return { value: decodeJson<unknown>(e.value), revision: e.revision };
  } catch (err) {
    log?.warn({ err, key: e.key }, 'budget value is not JSON; counted as absent');
    return { value: undefined, revision: e.revision };
  }
}
