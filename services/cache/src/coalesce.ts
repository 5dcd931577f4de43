import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { KV } from '@nats-io/kv';
import { createOnce, deleteOnce, encodeJson, getJson, isWrongRevision, updateOnce } from '@sluice/bus';
import { EventType, Subjects, type Answer } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import { decideJoin, type InflightRecord, type JoinStep } from './coalesce-join.js';

/** How a request joined the coalescing of its exact cache key. */
export type Joined =
  /** It goes upstream. `revision` is its record's (0: coalescing was unavailable, nothing to answer); `takeover` says why it replaced another leader. */
  | { role: 'leader'; revision: number; takeover?: string }
  /** The leader answered: this request is answered with that answer (waited `waitedMs`). */
  | { role: 'follower'; leaderRequestId: string; answer: Answer; waitedMs: number }
  /** Its own deadline came while it waited for the leader. */
  | { role: 'expired'; leaderRequestId: string; waitedMs: number };

export interface CoalescerDeps {
  /** `sluice_inflight` (history 1): records under the exact cache key. */
  kv: KV;
  nc: NatsConnection;
  /** `config.cache.coalesce.leaderTimeoutMs`, read on each decision so a config change applies. */
  leaderTimeoutMs: () => number;
  now?: () => number;
  log: Logger;
}

/**
 * How long an answered record stays before its leader deletes it: the followers woken by the
 * answer read it within milliseconds; later arrivals take over anyway. Without the delete every
 * miss's answer would sit in the bucket for its whole max age (600 s).
 */
const ANSWER_KEPT_MS = 5_000;
/** Request ids recently ended without an answer; a record they lead is stale at once. Bounded: failures can come in storms (shedding). */
const ENDED_KEPT = 10_000;
/**
 * The events that end a leader without an answer now: the terminal ones, and chat.held (degrade
 * level 4 keeps it for later; its followers are held on their own rather than wait on it).
 */
const ENDINGS = [EventType.ChatFailed, EventType.ChatShed, EventType.ChatCancelled, EventType.ChatHeld] as const;

type Read = { record: InflightRecord; revision: number } | null;

/** This process's state of one key while local joins are on it. */
interface KeyState {
  users: number;
  /** Local reads and writes of the key run one at a time, so N local joins cost one write and one read, not N. */
  tail: Promise<unknown>;
  /** The last read (null: no record); undefined once a change was seen and it must be read again. */
  known?: Read;
  /** Interest in the key's subject: every write of the record (accepted or not) wakes the waiters. */
  sub?: Subscription;
  /** Bumped on each write seen, so a waiter that decided on an older read does not sleep. */
  version: number;
  wake: Set<() => void>;
}

/**
 * Identical requests in flight make one upstream call, across replicas. The first to `create` a
 * key's record in `sluice_inflight` leads; the others wait for its answer (`answered`) and are
 * answered from it. A leader that ends without an answer (chat.failed, chat.shed,
 * chat.cancelled, chat.held: seen here on core NATS) or gives none within `leaderTimeoutMs` is taken over by
 * one waiter through compare-and-set; nobody waits past their own deadline.
 *
 * Waiting costs no JetStream consumer: a core subscription to the key's KV subject (one per key
 * per process, shared by its local waiters) signals each write, and one read per signal is shared.
 *
 * @example
 * const coalescer = new Coalescer({ kv: buckets.inflight, nc: bus.nc, leaderTimeoutMs: () => 30_000, log });
 * await coalescer.start();
 * const joined = await coalescer.join(key, requestId, ctx.deadline);
 */
export class Coalescer {
  private readonly now: () => number;
  private readonly keys = new Map<string, KeyState>();
  /** Request id -> why it ended, oldest first. */
  private readonly ended = new Map<string, string>();
  private readonly deletes = new Set<NodeJS.Timeout>();
  private subjectPrefix = '';
  private endings: Subscription[] = [];

  constructor(private readonly deps: CoalescerDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Learns the bucket's subject and subscribes to leaders' endings. Call once before `join`. */
  async start(): Promise<void> {
    this.subjectPrefix = `$KV.${(await this.deps.kv.status()).bucket}.`;
    this.endings = ENDINGS.map((type) => this.deps.nc.subscribe(Subjects.eventsOf(type), { callback: (_, m) => this.onEnded(type, m) }));
    await this.deps.nc.flush();
  }

  /** Stops listening for endings and cancels pending deletes (the bucket's max age removes those records). Joins still waiting end on their own timers. */
  async stop(): Promise<void> {
    for (const s of this.endings) s.unsubscribe();
    this.endings = [];
    for (const t of this.deletes) clearTimeout(t);
    this.deletes.clear();
  }

  /** Local joins waiting for a leader right now (a gauge; tests wait on it). */
  waiting(): number {
    let n = 0;
    for (const s of this.keys.values()) n += s.wake.size;
    return n;
  }

  /**
   * Joins the coalescing of `key` (the exact cache key) as `requestId`, waiting at most until
   * `deadline` (epoch ms). A leader costs one KV create; a follower a subscription and a read per
   * change of the record. A NATS error never fails the request: it leads with revision 0 (no
   * coalescing) and the error in `takeover`.
   */
  async join(key: string, requestId: string, deadline: number): Promise<Joined> {
    const started = this.now();
    const s = this.use(key);
    const joiner = { requestId, deadline, followed: undefined as string | undefined };
    try {
      for (;;) {
        const { step, read, version } = await this.serially(s, () => this.step(key, s, joiner));
        switch (step.step) {
          case 'lead':
            return { role: 'leader', revision: read!.revision };
          case 'create':
          case 'take-over': {
            const revision = await this.serially(s, () => this.claim(key, s, joiner, read));
            if (revision === undefined) continue;
            const takeover = step.step === 'take-over' ? step.reason : joiner.followed ? `leader ${joiner.followed} left without an answer` : undefined;
            return { role: 'leader', revision, ...(takeover ? { takeover } : {}) };
          }
          case 'answered':
            return { role: 'follower', leaderRequestId: read!.record.leader, answer: step.answer, waitedMs: this.now() - started };
          case 'expire':
            return { role: 'expired', leaderRequestId: read!.record.leader, waitedMs: this.now() - started };
          case 'follow':
            // set first: if the answer lands before the next read, that read still serves it
            joiner.followed = read!.record.leader;
            if (await this.watch(key, s)) continue; // just subscribed: read again, a change may have come before
            await this.wait(s, version, step.until);
            continue;
          default: {
            const _exhaustive: never = step;
            return _exhaustive;
          }
        }
      }
    } catch (err) {
      this.deps.log.warn({ err, key, requestId }, 'coalescing unavailable: the request goes upstream on its own');
      return { role: 'leader', revision: 0, takeover: `coalescing unavailable: ${(err as Error).message}` };
    } finally {
      this.unuse(key, s);
    }
  }

  /**
   * The leader's answer: its record becomes `answered`, which wakes the followers on every
   * replica, and is deleted `ANSWER_KEPT_MS` later. A lost compare-and-set (someone took over) or
   * a NATS error is logged, never thrown: the followers then take over after the timeout.
   * Revision 0 (joined without coalescing) does nothing.
   */
  async answered(key: string, requestId: string, revision: number, answer: Answer): Promise<void> {
    if (revision <= 0) return;
    const now = this.now();
    const record: InflightRecord = { leader: requestId, at: now, deadline: now, state: 'answered', answer };
    try {
      const written = await updateOnce(this.deps.kv, key, encodeJson(record), revision);
      const t = setTimeout(() => {
        this.deletes.delete(t);
        void this.remove(key, written);
      }, ANSWER_KEPT_MS);
      t.unref();
      this.deletes.add(t);
    } catch (err) {
      if (isWrongRevision(err)) this.deps.log.info({ key, requestId, revision }, 'coalescing: the answer came after another request took over the key');
      else this.deps.log.warn({ err, key, requestId }, 'coalescing: could not hand the answer to the followers');
    }
  }

  /** The leader ends without an answer: its record goes (only if still its own), so its followers contend again now. */
  async release(key: string, requestId: string, revision: number): Promise<void> {
    if (revision <= 0) return;
    this.deps.log.debug({ key, requestId }, 'coalescing: leader released its key');
    await this.remove(key, revision);
  }

  private async remove(key: string, revision: number): Promise<void> {
    try {
      await deleteOnce(this.deps.kv, key, revision);
    } catch (err) {
      if (!isWrongRevision(err)) this.deps.log.warn({ err, key }, 'coalescing: could not delete a record (the bucket max age will)');
    }
  }

  /** Reads (or reuses the last read of) the key and decides; the version is the one the decision saw. */
  private async step(key: string, s: KeyState, joiner: { requestId: string; deadline: number; followed?: string }) {
    if (s.known === undefined) {
      // first contact with a key nobody here watches: the leader's path is one write, no read
      if (!s.sub && joiner.followed === undefined) {
        const revision = await this.tryWrite(() => createOnce(this.deps.kv, key, encodeJson(this.leading(joiner))));
        if (revision !== undefined) {
          s.known = { record: this.leading(joiner), revision };
          return { step: { step: 'lead' } as JoinStep, read: s.known, version: s.version };
        }
      }
      const got = await getJson<InflightRecord>(this.deps.kv, key);
      s.known = got ? { record: got.value, revision: got.revision } : null;
    }
    const read = s.known;
    const ended = read ? this.ended.get(read.record.leader) : undefined;
    return { step: decideJoin(read?.record, joiner, this.now(), this.deps.leaderTimeoutMs(), ended), read, version: s.version };
  }

  /** Creates the record (none was read) or replaces the read one; undefined when another request got there first. */
  private async claim(key: string, s: KeyState, joiner: { requestId: string; deadline: number }, read: Read): Promise<number | undefined> {
    if (s.known !== read) return undefined; // it changed while this join waited its turn: decide again
    const record = this.leading(joiner);
    const bytes = encodeJson(record);
    const revision = await this.tryWrite(() => (read ? updateOnce(this.deps.kv, key, bytes, read.revision) : createOnce(this.deps.kv, key, bytes)));
    s.known = revision === undefined ? undefined : { record, revision };
    return revision;
  }

  private leading(joiner: { requestId: string; deadline: number }): InflightRecord {
    return { leader: joiner.requestId, at: this.now(), deadline: joiner.deadline, state: 'leading' };
  }

  /** A compare-and-set write (`createOnce`/`updateOnce`, one winner on a cluster too): its revision, or undefined when it lost the race. */
  private async tryWrite(write: () => Promise<number>): Promise<number | undefined> {
    try {
      return await write();
    } catch (err) {
      if (isWrongRevision(err)) return undefined;
      throw err;
    }
  }

  /** Subscribes this process to the key's writes; true when it just did (the caller must read again). */
  private async watch(key: string, s: KeyState): Promise<boolean> {
    if (s.sub) return false;
    s.sub = this.deps.nc.subscribe(`${this.subjectPrefix}${key}`, { callback: () => this.changed(s) });
    // the server has the interest before the read that follows, so no write falls between them
    await this.deps.nc.flush();
    // local joins that decided on a read from before the interest existed read again too
    this.changed(s);
    return true;
  }

  private changed(s: KeyState): void {
    s.known = undefined;
    s.version++;
    for (const wake of [...s.wake]) wake();
  }

  /** Sleeps until the record changes, a leader ends, or `until` (epoch ms); at once if it changed since `version`. */
  private wait(s: KeyState, version: number, until: number): Promise<void> {
    if (s.version !== version) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        s.wake.delete(done);
        resolve();
      };
      // +1: a timer may fire a hair early on the clock the decision reads
      const timer = setTimeout(done, Math.max(0, until - this.now()) + 1);
      s.wake.add(done);
    });
  }

  private onEnded(type: string, m: Msg): void {
    // Nats-Msg-Id is `<requestId>:<type>` (request ids never hold ':'): no JSON parse per event
    const id = m.headers?.get('Nats-Msg-Id');
    let requestId = id ? id.slice(0, id.indexOf(':')) : '';
    if (!requestId) {
      try {
        requestId = m.json<{ requestId?: string }>().requestId ?? '';
      } catch {
        return;
      }
    }
    if (!requestId) return;
    this.ended.set(requestId, type);
    if (this.ended.size > ENDED_KEPT) this.ended.delete(this.ended.keys().next().value!);
    for (const s of this.keys.values()) {
      if (s.known?.record.leader === requestId) {
        s.version++;
        for (const wake of [...s.wake]) wake();
      }
    }
  }

  private serially<T>(s: KeyState, fn: () => Promise<T>): Promise<T> {
    const run = s.tail.then(fn, fn);
    s.tail = run.catch(() => undefined);
    return run;
  }

  private use(key: string): KeyState {
    let s = this.keys.get(key);
    if (!s) {
      s = { users: 0, tail: Promise.resolve(), version: 0, wake: new Set() };
      this.keys.set(key, s);
    }
    s.users++;
    return s;
  }

  private unuse(key: string, s: KeyState): void {
    if (--s.users > 0) return;
    s.sub?.unsubscribe();
    this.keys.delete(key);
  }
}
