/**
 * The degrader's leader lease, pure. A record `{ holder, until }` under one key of `sluice_leases`
 * (nats-server 2.9 has no per-message TTL, so the record carries its own end): created when
 * absent, renewed by its holder, taken over by another replica only once `until` has passed.
 * Every write is compare-and-set on the revision read, so of two replicas moving at once one wins.
 */
export interface LeaseRecord {
  /** Who holds it: a replica's id (host, pid and a random part). */
  holder: string;
  /** Epoch ms, the holder's clock: no other replica takes it before. */
  until: number;
}

export type LeaseMove = 'create' | 'renew' | 'take' | 'wait';

/** What a replica does with the lease it read (undefined: no record, or one that is not a lease). */
export function leaseMove(current: LeaseRecord | undefined, holder: string, now: number): LeaseMove {
  if (!current) return 'create';
  if (current.holder === holder) return 'renew';
  return current.until <= now ? 'take' : 'wait';
}

/**
 * Whether a lease this replica wrote with `until` still lets it lead at `now`. It stops a third of
 * the lease before the end, so a replica whose clock runs up to that much ahead, or a step that
 * was deciding when the lease ran out, cannot overlap the next leader.
 */
export function leads(until: number | undefined, now: number, leaseMs: number): boolean {
  return until !== undefined && now < until - leaseMs / 3;
}

/** A lease record from the bucket, or undefined when the value is not one. */
export function asLease(value: unknown): LeaseRecord | undefined {
  const v = value as Partial<LeaseRecord> | null;
  return typeof v?.holder === 'string' && typeof v.until === 'number' ? (value as LeaseRecord) : undefined;
}
