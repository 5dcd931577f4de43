import type { KV, KvEntry } from '@nats-io/kv';
import { createOnce, decodeJson, encodeJson, followBucket, isWrongRevision, updateOnce } from '@sluice/bus';
import type { Logger } from '@sluice/telemetry';
import { closedCircuit, type Circuit, type Outcome } from './circuit.js';

/**
 * The circuits of every deployment, shared by the invoker replicas. Admission reads `view`
 * (memory, no I/O); a change goes through `apply`, which decides on what this replica last saw
 * and writes only when the circuit changes.
 */
export interface CircuitStore {
  /** The circuit as this replica last saw it; undefined = never written (closed). */
  view(deployment: string): Circuit | undefined;
  /**
   * Runs `decide` on the current circuit and writes its result if it differs (compare-and-set);
   * on a lost race it reads the bucket and decides again. Resolves with the decision that
   * stands: its `transition` is this replica's to publish (no other replica's write made it).
   */
  apply(deployment: string, decide: (current: Circuit) => Outcome): Promise<Outcome>;
}

interface Seen {
  circuit: Circuit;
  /** The bucket's revision of the key; 0: never written. */
  revision: number;
}

/** Races lost in a row before giving up on a write (each re-reads, so it only runs out under a storm of writers). */
const MAX_TRIES = 20;

/**
 * `sluice_circuits`, one key per deployment, kept in memory by one watch of the bucket: another
 * replica's write reaches this one's `view` within a watch delivery (about a millisecond
 * locally), and a write of this replica's is in its own `view` at once. Writes happen only on
 * changes: a healthy deployment's success changes nothing, so a healthy request path costs no KV
 * I/O at all. This replica's changes to one deployment run one at a time (a queue per key), so
 * its own requests never race each other; other replicas' writes are caught by the revision (written with `createOnce`/`updateOnce`, so one
 * wins on a cluster too: docs/cluster.md).
 *
 * A bucket that cannot be written (NATS away) does not fail requests: the change is kept in this
 * replica's view only, with a warning, and the next write carries it (or loses a race and is
 * decided again on the bucket's value).
 *
 * @example
 * const circuits = new KvCircuits(buckets.circuits, log);
 * await circuits.start();
 * const { transition } = await circuits.apply('east', (c) => decide(c, { kind: 'failure' }, Date.now(), settings));
 */
export class KvCircuits implements CircuitStore {
  private readonly seen = new Map<string, Seen>();
  private readonly queues = new Map<string, Promise<unknown>>();
  private stopWatch: () => void = () => undefined;
  /** Writes made and races lost since start: what the circuits cost the bucket. */
  readonly counts = { writes: 0, conflicts: 0, reads: 0 };

  constructor(
    private readonly kv: KV,
    private readonly log: Logger,
  ) {}

  /**
   * Watches the bucket; resolves once the circuits already in it are in memory. Until then
   * `view` says closed for what it has not heard of (a replica just started calls a deployment
   * another replica has open for at most the first watch delivery).
   */
  start(): Promise<void> {
    return this.follow();
  }

  view(deployment: string): Circuit | undefined {
    return this.seen.get(deployment)?.circuit;
  }

  apply(deployment: string, decide: (current: Circuit) => Outcome): Promise<Outcome> {
    const previous = this.queues.get(deployment) ?? Promise.resolve();
    const next = previous.then(() => this.write(deployment, decide));
    const tail = next.catch(() => undefined);
    this.queues.set(deployment, tail);
    void tail.then(() => {
      if (this.queues.get(deployment) === tail) this.queues.delete(deployment);
    });
    return next;
  }

  stop(): void {
    this.stopWatch();
  }

  private async write(deployment: string, decide: (current: Circuit) => Outcome): Promise<Outcome> {
    let seen = this.seen.get(deployment) ?? { circuit: closedCircuit, revision: 0 };
    for (let i = 0; i < MAX_TRIES; i++) {
      const outcome = decide(seen.circuit);
      if (outcome.circuit === seen.circuit) return outcome;
      try {
        const bytes = encodeJson(outcome.circuit);
        const revision = seen.revision === 0 ? await createOnce(this.kv, deployment, bytes) : await updateOnce(this.kv, deployment, bytes, seen.revision);
        this.counts.writes++;
        this.observe(deployment, { circuit: outcome.circuit, revision });
        return outcome;
      } catch (e) {
        if (!isWrongRevision(e)) {
          this.log.warn({ err: e, deployment }, 'circuit not written to the bucket; this replica keeps the change alone');
          this.seen.set(deployment, { circuit: outcome.circuit, revision: seen.revision });
          return outcome;
        }
        this.counts.conflicts++;
        seen = await this.read(deployment);
      }
    }
    throw new Error(`circuit of ${deployment}: ${MAX_TRIES} compare-and-set races lost in a row`);
  }

  /**
   * The stream leader's value after a lost race, kept even when the watch showed a higher
   * revision: after a leader change the watch may count in another replica's numbering, which
   * the leader's check does not use (contracts `Topology.buckets`, docs/cluster.md).
   */
  private async read(deployment: string): Promise<Seen> {
    this.counts.reads++;
    const e = await this.kv.get(deployment);
    const seen = e ? this.toSeen(e) : { circuit: closedCircuit, revision: 0 };
    this.seen.set(deployment, seen);
    return seen;
  }

  /** Keeps what a write, read or the watch showed, unless a later revision is known already. */
  private observe(deployment: string, next: Seen): Seen {
    const known = this.seen.get(deployment);
    if (known && known.revision > next.revision) return known;
    this.seen.set(deployment, next);
    return next;
  }

  private async follow(): Promise<void> {
    const followed = await followBucket(this.kv, (e) => this.observe(e.key, this.toSeen(e)), {
      log: this.log,
      what: 'circuits (this replica no longer hears the others)',
    });
    this.stopWatch = () => followed.stop();
  }

  /** A deleted or unreadable record is a closed circuit (at that revision, so the next write still compares). */
  private toSeen(e: KvEntry): Seen {
    if (e.operation !== 'PUT' || e.length === 0) return { circuit: closedCircuit, revision: e.revision };
    try {
      const c = decodeJson<Circuit>(e.value);
      if (c && (c.state === 'closed' || c.state === 'open' || c.state === 'half-open') && typeof c.failures === 'number')
        return { circuit: c, revision: e.revision };
    } catch {
      // fall through
    }
    this.log.warn({ deployment: e.key, revision: e.revision }, 'circuit record unreadable; taken as closed');
    return { circuit: closedCircuit, revision: e.revision };
  }
}
