import { headers } from '@nats-io/transport-node';
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { Bucket, type KV } from '@nats-io/kv';
import { isWrongRevision } from './kv.js';

/**
 * `kv.create(key, value)` that only one writer can win, on a three-node cluster too; resolves to
 * the new revision, rejects with a lost race (`isWrongRevision`) when the key has a value.
 *
 * nats-server before 2.9.21 (ours is 2.9.10) checks a clustered stream's expected last subject
 * sequence against what the leader has applied, before it proposes the write, and not again when
 * the write is applied (nats-server#4320): two writers that expect the same revision at about the
 * same time are both told they won, and the later write overwrites the earlier unseen. A single
 * server checks under its stream lock and is exact. De-duplication by `Nats-Msg-Id` is checked
 * when a write is applied, in log order, on every node: so each write also carries
 * `<key>@<expected revision>` as its msg id, and of the writes that expected one revision the
 * first applied is stored and the others come back as duplicates, reported here as the lost race.
 * (The limiter's work found this, docs/cluster.md, and its updates use it. Creates, expecting
 * revision 0, were seen checked when applied; the id costs nothing there if they always are.) A
 * revision is never expected again once written over, so the id does not repeat within
 * the bucket's 2 minute window for another reason. A try of our own that was stored but whose ack
 * was lost, sent again, is reported lost too: the caller reads the key and finds its own value.
 *
 * A key whose last entry is a delete is created over it (at the delete's revision), as
 * `kv.create` does. Anything other than a bucket of @nats-io/kv gets the plain `create`.
 */
export async function createOnce(kv: KV, key: string, value: Uint8Array): Promise<number> {
  if (!(kv instanceof Bucket)) return kv.create(key, value);
  try {
    return await writeOnce(kv, key, value, 0);
  } catch (e) {
    if (!isWrongRevision(e)) throw e;
    const current = await kv.get(key);
    if (current?.operation === 'DEL' || current?.operation === 'PURGE') return writeOnce(kv, key, value, current.revision);
    throw e;
  }
}

/** `kv.update(key, value, revision)` that only one writer can win (see `createOnce`). */
export async function updateOnce(kv: KV, key: string, value: Uint8Array, revision: number): Promise<number> {
  if (!(kv instanceof Bucket)) return kv.update(key, value, revision);
  return writeOnce(kv, key, value, revision);
}

/**
 * `kv.delete(key, { previousSeq: revision })` that only one writer can win (see `createOnce`): a
 * delete that expects a revision another writer has just replaced (a follower taking over a
 * coalescing record the leader is releasing) would otherwise be stored after the replacement,
 * and erase it. Its msg id is the same `<key>@<revision>` as an update's, so of a delete and an
 * update that expected one revision only the first applied is stored. Rejects with a lost race.
 */
export async function deleteOnce(kv: KV, key: string, revision: number): Promise<void> {
  if (!(kv instanceof Bucket)) return kv.delete(key, { previousSeq: revision });
  const hdrs = headers();
  // what @nats-io/kv's delete writes: an empty message marked as a delete
  hdrs.set('KV-Operation', 'DEL');
  await writeOnce(kv, key, new Uint8Array(0), revision, hdrs);
}

async function writeOnce(kv: Bucket, key: string, value: Uint8Array, revision: number, hdrs?: ReturnType<typeof headers>): Promise<number> {
  const ack = await kv.js.publish(kv.subjectForKey(kv.encodeKey(key), true), value, {
    msgID: `${key}@${revision}`,
    expect: { lastSubjectSequence: revision },
    ...(hdrs ? { headers: hdrs } : {}),
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
