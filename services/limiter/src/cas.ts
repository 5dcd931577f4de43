import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { Bucket, type KV } from '@nats-io/kv';

/**
 * `kv.update(key, value, revision)` that only one writer can win, on a three-node cluster too.
 *
 * nats-server before 2.9.21 (ours is 2.9.10) checks a clustered stream's
 * `Nats-Expected-Last-Subject-Sequence` only against what the leader has applied, before it
 * proposes the write, and not again when the write is applied (nats-server#4320, fixed by #4319
 * in 2.9.21). Two replicas that read one revision and write at about the same time both win:
 * each is told its write followed that revision, and the earlier write is overwritten unseen. On
 * our loopback cluster, 83 of 100 rounds of three simultaneous updates had more than one winner,
 * and three limiters admitted up to 140 of a 120/min limit. A single server checks under its
 * stream lock and is exact.
 *
 * Message-id de-duplication is checked when a write is applied, in the log's order, on every
 * node of 2.9.10. So the write also carries `Nats-Msg-Id: <key>@<revision>`: of the writes that
 * expected one revision of a key, the first applied is stored and the rest are answered as
 * duplicates, which this turns into the lost race (`StreamWrongLastSequence`) a compare-and-set
 * reports. A revision is never expected again once written over, so the id never repeats within
 * the bucket's de-duplication window (2 minutes) for another reason. What it costs: a header and
 * an entry in the stream's de-duplication map per write. A publish the client retried after its
 * first try was stored is reported lost too (errs towards throttling: the debit stays in KV).
 *
 * Anything other than a bucket of @nats-io/kv (a test double) gets the plain `update`.
 */
export async function updateOnce(kv: KV, key: string, value: Uint8Array, revision: number): Promise<number> {
  if (!(kv instanceof Bucket)) return kv.update(key, value, revision);
  const ack = await kv.js.publish(kv.subjectForKey(kv.encodeKey(key), true), value, {
    msgID: `${key}@${revision}`,
    expect: { lastSubjectSequence: revision },
  });
  if (ack.duplicate) {
    throw new JetStreamApiError({
      code: 400,
      err_code: JetStreamApiCodes.StreamWrongLastSequence,
      description: `wrong last sequence: another write that expected revision ${revision} of ${key} was stored first`,
    });
  }
  return ack.seq;
}
