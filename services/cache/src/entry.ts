import type { EventDataOf } from '@sluice/contracts';

type CachedAnswer = EventDataOf<'cache.hit'>['answer'];

/** What the cache bucket holds under a key: the answer and where it came from. */
export interface CacheEntry {
  answer: CachedAnswer;
  /** Epoch ms when the answer was stored. */
  storedAt: number;
  /** The request whose answer this is, for the timeline. */
  requestId: string;
  /**
   * Epoch ms after which the entry is not served: the request's or tenant's TTL when shorter than
   * the bucket's max age (nats-server 2.9 has no per-message TTL). Absent on older entries.
   */
  expiresAt?: number;
}

/**
 * An entry read from the bucket, or undefined when it does not have the expected shape: an
 * entry in an older format is a miss, never a malformed cache.hit event.
 */
export function asEntry(value: unknown): CacheEntry | undefined {
  const v = value as Partial<CacheEntry> | null;
  const a = v?.answer;
  const ok =
    typeof v?.storedAt === 'number' &&
    typeof v.requestId === 'string' &&
    (v.expiresAt === undefined || typeof v.expiresAt === 'number') &&
    typeof a?.model === 'string' &&
    typeof a.body === 'object' &&
    a.body !== null &&
    Number.isInteger(a.usage?.prompt_tokens) &&
    Number.isInteger(a.usage?.completion_tokens) &&
    Number.isInteger(a.usage?.total_tokens);
  return ok ? (value as CacheEntry) : undefined;
}
