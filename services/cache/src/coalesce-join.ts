import type { Answer } from '@sluice/contracts';

/**
 * What `sluice_inflight` holds under an exact cache key while a request leads its coalescing
 * (JSON). nats-server 2.9 has no per-message TTL, so the record carries its own times and the
 * bucket's max age only cleans up after leaders that vanished.
 */
export interface InflightRecord {
  /** Request id of the leader: the one request of the key that goes upstream. */
  leader: string;
  /** Epoch ms the leader took the key; past `at + leaderTimeoutMs` it is stale and may be taken over. */
  at: number;
  /** The leader's own deadline (epoch ms); past it nobody waits for it. */
  deadline: number;
  state: 'leading' | 'answered';
  /** Set with `answered`: what the followers are answered with. */
  answer?: Answer;
}

/** The request asking to join a key's coalescing. */
export interface Joiner {
  requestId: string;
  /** Its own deadline, epoch ms: it never waits past it. */
  deadline: number;
  /** The leader it has been following so far, if any: only that leader's answer is served to it. */
  followed?: string;
}

/** What a join does next, given what the bucket holds. */
export type JoinStep =
  | { step: 'create' }
  | { step: 'lead' }
  | { step: 'take-over'; reason: string }
  | { step: 'follow'; until: number }
  | { step: 'answered'; answer: Answer }
  | { step: 'expire' };

/**
 * The coalescing decision for one read of a key's record (`undefined`: none, or deleted). Pure:
 * the caller reads, writes with compare-and-set and waits.
 * - no record: create one (and lead if the create wins);
 * - the joiner's own record (a redelivery of the leader's chat.admitted): lead again;
 * - answered by the leader the joiner followed: that answer; answered by a leader it never
 *   followed (it finished before the joiner arrived, and its answer was not in the cache): take over;
 * - a leader that ended without an answer (`leaderEnded`, e.g. `chat.failed`), gave no answer
 *   within `leaderTimeoutMs`, or passed its own deadline: take over;
 * - otherwise follow until the first of the joiner's deadline, the leader's timeout and the
 *   leader's deadline (then read again), or expire when the joiner's deadline has come.
 *
 * @example
 * decideJoin({ leader: 'r1', at: 0, deadline: 60_000, state: 'leading' }, { requestId: 'r2', deadline: 60_000 }, 1_000, 30_000)
 * // { step: 'follow', until: 30_000 }
 */
export function decideJoin(record: InflightRecord | undefined, joiner: Joiner, now: number, leaderTimeoutMs: number, leaderEnded?: string): JoinStep {
  if (!record) return { step: 'create' };
  const { leader } = record;
  if (leader === joiner.requestId) return { step: 'lead' };
  if (record.state === 'answered') {
    if (leader === joiner.followed && record.answer) return { step: 'answered', answer: record.answer };
    return { step: 'take-over', reason: `leader ${leader} had answered before this request joined` };
  }
  if (leaderEnded) return { step: 'take-over', reason: `leader ${leader} ended without an answer (${leaderEnded})` };
  const staleAt = record.at + leaderTimeoutMs;
  if (now >= staleAt) return { step: 'take-over', reason: `leader ${leader} gave no answer in ${leaderTimeoutMs} ms` };
  if (now >= record.deadline) return { step: 'take-over', reason: `leader ${leader} passed its deadline` };
  if (now >= joiner.deadline) return { step: 'expire' };
  return { step: 'follow', until: Math.min(joiner.deadline, staleAt, record.deadline) };
}
