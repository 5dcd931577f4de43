/**
 * Idempotency keys, as Stripe-style APIs honour them: a chat request carrying an
 * `Idempotency-Key` header that was already served in full is answered with the stored answer
 * (header `idempotent-replayed: true`) and is not served, charged or rate-limited again.
 *
 * Only answers served in full are kept; an error, a throttle, a hang or a stream the client cut
 * off releases the key, so the retry is served (and counted) afresh. A repeat that arrives while
 * the first is still in flight waits for it. The same key with a different body is refused (422).
 *
 * Why the simulator has it: a gateway that dies after the upstream answered but before it
 * recorded the answer calls again on redelivery. Only the upstream can tell the second call
 * from a new one; with the key it does, and the tokens it served stay equal to what was billed.
 */

/** What a replay needs to answer again exactly as the first time. */
interface Served<T> {
  fingerprint: string;
  answer: T;
  at: number;
}

type Entry<T> = { state: 'served'; served: Served<T> } | { state: 'in-flight'; fingerprint: string; settled: Promise<void> };

export type Claim<T> =
  /** First use of the key (or a retry after a failure): serve it, then `complete` or `release`. */
  { kind: 'fresh'; complete: (answer: T) => void; release: () => void } | { kind: 'replay'; answer: T } | { kind: 'mismatch' };

/** How long a served answer is kept, and how many at most (oldest dropped first; a few KB each). */
const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
const IDEMPOTENCY_CAPACITY = 20_000;
/** Longest key accepted, as Stripe's. */
export const MAX_IDEMPOTENCY_KEY = 255;

export class IdempotencyStore<T> {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(
    private readonly ttlMs = IDEMPOTENCY_TTL_MS,
    private readonly capacity = IDEMPOTENCY_CAPACITY,
  ) {}

  /** Claims `key` for a request whose body hashes to `fingerprint`; waits out a request in flight. */
  async claim(key: string, fingerprint: string, now: () => number): Promise<Claim<T>> {
    for (;;) {
      const entry = this.entries.get(key);
      if (entry?.state === 'in-flight') {
        if (entry.fingerprint !== fingerprint) return { kind: 'mismatch' };
        await entry.settled;
        continue;
      }
      if (entry?.state === 'served' && now() - entry.served.at <= this.ttlMs) {
        return entry.served.fingerprint === fingerprint ? { kind: 'replay', answer: entry.served.answer } : { kind: 'mismatch' };
      }
      return this.begin(key, fingerprint, now);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
  }

  private begin(key: string, fingerprint: string, now: () => number): Claim<T> {
    let settle!: () => void;
    const settled = new Promise<void>((r) => (settle = r));
    const mine: Entry<T> = { state: 'in-flight', fingerprint, settled };
    this.entries.delete(key);
    this.entries.set(key, mine);
    let done = false;
    const finish = (next: Entry<T> | undefined) => {
      if (done) return;
      done = true;
      // a reset may have dropped or replaced the entry meanwhile; only ours is ours to settle
      if (this.entries.get(key) === mine) {
        this.entries.delete(key);
        if (next) this.entries.set(key, next);
      }
      this.evict();
      settle();
    };
    return {
      kind: 'fresh',
      complete: (answer) => finish({ state: 'served', served: { fingerprint, answer, at: now() } }),
      release: () => finish(undefined),
    };
  }

  /** Map iteration is insertion order, so the first entries are the oldest. */
  private evict(): void {
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= this.capacity) return;
      if (entry.state === 'served') this.entries.delete(key);
    }
  }
}
