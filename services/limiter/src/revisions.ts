import type { Bucket } from './limiter.js';
import type { Stored } from './job.js';

/**
 * Value and revision of keys as this store last read or wrote them, so a round need not read
 * them again: the compare-and-set against the kept revision is the check that nobody wrote the
 * key since. Bounded (one key per user): the least recently written beyond `max` are dropped.
 */
export class RevisionCache {
  private readonly byKey = new Map<string, Stored>();

  constructor(private readonly max: number) {}

  get(key: string): Stored | undefined {
    return this.byKey.get(key);
  }

  value(key: string): Bucket | undefined {
    return this.byKey.get(key)?.value;
  }

  remember(key: string, value: Bucket, revision: number): void {
    this.byKey.delete(key);
    this.byKey.set(key, { value, revision });
    if (this.byKey.size > this.max) this.byKey.delete(this.byKey.keys().next().value!);
  }

  /** After a lost race (or a write that may not have happened): read it afresh next time. */
  forget(key: string): void {
    this.byKey.delete(key);
  }
}
