import { createHash } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import { createOnce, deleteOnce, encodeJson, getJson, isWrongRevision, retryFor, updateOnce } from '@sluice/bus';
import { idempotencyBucketKey, isError, isRetryableStatus, SluiceError, type ChatReply, type Endpoint } from '@sluice/contracts';
import { RequestRejected } from './rejection.js';
import { busUnavailable } from './unavailable.js';
import type { Logger } from '@sluice/telemetry';

/** The longest `Idempotency-Key` taken, in characters (Stripe's limit; the IETF draft sets none). */
export const MAX_IDEMPOTENCY_KEY_CHARS = 255;
/** How long past the first try's deadline a retry still waits for its answer: the time the pipeline takes to end it. */
const DEADLINE_GRACE_MS = 2000;
/** Takeovers a retry tries before it gives up with `idempotency_key_in_use` (each one another try won). */
const MAX_ROUNDS = 3;
/**
 * How long a retry waits for the holder's answer before it reads the key again: a holder that
 * never went out gives the key back (its client left first, or the store did not answer it), and
 * the retry then takes it at once instead of waiting out the holder's deadline.
 */
const HOLDER_POLL_MS = 2000;
/**
 * How long a read or write of the store (or of the first try's answer) is tried again before the
 * request is refused `service_busy`: a stream of a cluster elects a new leader in a few seconds.
 */
const STORE_RETRY_MS = 3000;
/**
 * How long a claim this request may have stored without hearing so (the write's ack lost while a
 * node was down) is looked for, to be given back: the request was refused and never runs.
 */
const ORPHAN_RELEASE_MS = 60_000;
/** Printable ASCII, no leading or trailing space. */
const KEY_PATTERN = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;

/** What `sluice_idempotency` keeps per key: the request the key started, what it asked and until when it may run. */
export interface IdempotencyRecord {
  requestId: string;
  /** `requestFingerprint` of the first request: a retry must send the same. */
  fingerprint: string;
  /** The first request's deadline (epoch ms): past it (and a grace), its answer is no longer waited for. */
  deadline: number;
}

/** The `sluice_idempotency` bucket as ingress uses it: compare-and-set on one record per tenant and key. */
export interface IdempotencyStore {
  /** Creates the key's record; undefined when the key already has one. Resolves to its revision. */
  create(key: string, record: IdempotencyRecord): Promise<number | undefined>;
  get(key: string): Promise<{ record: IdempotencyRecord; revision: number } | undefined>;
  /** Replaces the record at `revision`; resolves to the new revision, undefined when another write came first. */
  replace(key: string, record: IdempotencyRecord, revision: number): Promise<number | undefined>;
  /** Deletes the record if it is still at `revision` (the request it names never went out). */
  release(key: string, revision: number): Promise<void>;
}

/**
 * `IdempotencyStore` on the `sluice_idempotency` KV bucket. Creates and replaces are
 * compare-and-sets that one writer wins on a cluster too (`createOnce`, `updateOnce`: nats-server
 * 2.9.10 let two replaces of one revision both win, and both retries ran).
 */
export function idempotencyStore(kv: KV): IdempotencyStore {
  const lostRace = (e: unknown) => {
    if (isWrongRevision(e)) return undefined;
    throw e;
  };
  return {
    create: (key, record) => createOnce(kv, key, encodeJson(record)).catch(lostRace),
    async get(key) {
      const found = await getJson<IdempotencyRecord>(kv, key);
      return found ? { record: found.value, revision: found.revision } : undefined;
    },
    replace: (key, record, revision) => updateOnce(kv, key, encodeJson(record), revision).catch(lostRace),
    async release(key, revision) {
      await deleteOnce(kv, key, revision).catch(lostRace);
    },
  };
}

/**
 * How a request with an idempotency key goes on: run it (it holds the key), answer with the first
 * try's answer, or nothing at all: its client left while it waited for an earlier try (it holds nothing).
 */
export type Claim = { kind: 'run'; release: () => Promise<void> } | { kind: 'replay'; requestId: string; reply: ChatReply } | { kind: 'left' };

/**
 * The request's `Idempotency-Key` (HTTP) or `sluice-idempotency-key` (NATS): 1 to 255 printable
 * ASCII characters; absent is undefined.
 *
 * @throws RequestRejected invalid_request naming `param` for an empty, too long or non-ASCII key.
 */
export function idempotencyKeyOf(value: string | undefined, param: string): string | undefined {
  if (value === undefined) return undefined;
  if (value.length > MAX_IDEMPOTENCY_KEY_CHARS || !KEY_PATTERN.test(value)) {
    throw new RequestRejected(
      'invalid_request',
      `${param} must be 1 to ${MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters (a UUID is a good key).`,
      param,
    );
  }
  return value;
}

/** What a retry must repeat to get the first try's answer: the endpoint and the body (SHA-256, hex). */
export function requestFingerprint(endpoint: Endpoint, body: unknown): string {
  return createHash('sha256').update(endpoint).update('\n').update(JSON.stringify(body)).digest('hex');
}

/**
 * Whether a stored answer is the answer a retry gets. An error a retry may mend (429, 5xx, the
 * deadline, a cancel) is not: the retry runs the request again, as it would without a key.
 */
export function replayable(reply: ChatReply): boolean {
  if (!isError(reply)) return true;
  const { status, code } = reply.error;
  return !isRetryableStatus(status) && code !== 'request_cancelled' && code !== 'deadline_exceeded';
}

/** What `claimOrReplay` needs from ingress's deps. */
export interface ClaimDeps {
  idempotency: IdempotencyStore;
  /** The stored answer of a request for a tenant, waited for until `until` (epoch ms). */
  awaitResult(tenant: string, requestId: string, until: number): Promise<ChatReply | undefined>;
}

/** How one request claims: where it says that it waits or takes a key over (its logger), and when its client left. */
export interface ClaimOptions {
  log?: Pick<Logger, 'info'>;
  /** Aborted when the client left: a retry then stops waiting and takes nothing over (`left`). */
  clientGone?: AbortSignal;
}

/**
 * Claims a tenant's idempotency key for a request about to be published, or finds the answer of
 * the request that holds it.
 * - A new key: recorded for this request (`run`); `release` frees it if the request never goes out.
 * - A key held by the same request (same fingerprint): waits for that request's stored answer
 *   (until its deadline and a grace) and returns it (`replay`), unless that answer is an error a
 *   retry may mend or none came: then this request takes the key over (`run`), compare-and-set,
 *   so of several retries at once one runs and the others wait for it.
 *
 * A store that cannot be read or written (a node of the cluster down, its stream without a leader
 * for longer than STORE_RETRY_MS) leaves this request unsure whether another try holds the key: it
 * is refused, never run, and a claim of its own that the store kept unheard is given back later.
 *
 * @throws RequestRejected idempotency_key_reused (422) when the key was used for another request;
 * idempotency_key_in_use (409) when other retries kept taking it over.
 * @throws SluiceError service_busy (503, Retry-After) when the store could not be reached.
 */
export async function claimOrReplay(
  deps: ClaimDeps,
  tenant: string,
  key: string,
  mine: IdempotencyRecord,
  param: string,
  opts: ClaimOptions = {},
): Promise<Claim> {
  const bucketKey = idempotencyBucketKey(tenant, key);
  try {
    return await claimRounds(deps, tenant, bucketKey, mine, param, opts);
  } catch (e) {
    // refused while the store did not answer: a claim it kept unheard is given back
    if (e instanceof SluiceError && e.code === 'service_busy') releaseIfMine(deps.idempotency, bucketKey, mine.requestId);
    throw e;
  }
}

/** The rounds of `claimOrReplay`: create, or wait for the holder's answer and take over. */
async function claimRounds(deps: ClaimDeps, tenant: string, bucketKey: string, mine: IdempotencyRecord, param: string, opts: ClaimOptions): Promise<Claim> {
  const claimed = (revision: number): Claim => ({ kind: 'run', release: () => deps.idempotency.release(bucketKey, revision) });
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const created = await sure(() => deps.idempotency.create(bucketKey, mine));
    if (created !== undefined) return claimed(created);
    const held = await sure(() => deps.idempotency.get(bucketKey));
    // deleted between the two: try to create it again
    if (!held) continue;
    // our own write, stored on a try whose ack was lost: the key is ours
    if (held.record.requestId === mine.requestId) return claimed(held.revision);
    if (held.record.fingerprint !== mine.fingerprint) throw new RequestRejected('idempotency_key_reused', undefined, param);
    const until = held.record.deadline + DEADLINE_GRACE_MS;
    const holder = held.record.requestId;
    opts.log?.info({ holder, until: new Date(until).toISOString(), round }, 'Idempotency-Key held by an earlier try: waiting for its answer');
    const waited = await waitForHolder(deps, tenant, bucketKey, held, until, opts.clientGone);
    // a try whose client left takes nothing over: it would hold the key for a request nobody sends
    if (waited.kind === 'left') return waited;
    // the holder gave the key back, or another try took it over: look again
    if (waited.kind === 'moved') continue;
    const answer = waited.answer;
    if (answer && replayable(answer)) return { kind: 'replay', requestId: holder, reply: answer };
    const taken = await sure(() => deps.idempotency.replace(bucketKey, mine, held.revision));
    opts.log?.info(
      { holder, revision: held.revision, taken: taken !== undefined },
      taken !== undefined ? 'took the Idempotency-Key over' : 'another try took the Idempotency-Key over first',
    );
    if (taken !== undefined) return claimed(taken);
  }
  throw new RequestRejected('idempotency_key_in_use', undefined, param);
}

/**
 * Waits for the answer of the try that holds the key until `until`, in slices of HOLDER_POLL_MS,
 * reading the key between them: `moved` when it no longer holds the revision it was read at
 * (given back, or taken over), `left` when this try's client left, else the answer or none.
 */
async function waitForHolder(
  deps: ClaimDeps,
  tenant: string,
  bucketKey: string,
  held: { record: IdempotencyRecord; revision: number },
  until: number,
  clientGone?: AbortSignal,
): Promise<{ kind: 'answer'; answer?: ChatReply } | { kind: 'moved' } | { kind: 'left' }> {
  for (;;) {
    if (clientGone?.aborted) return { kind: 'left' };
    const answer = await sure(() => deps.awaitResult(tenant, held.record.requestId, Math.min(until, Date.now() + HOLDER_POLL_MS)));
    if (answer) return { kind: 'answer', answer };
    if (Date.now() >= until) return { kind: 'answer' };
    if (clientGone?.aborted) return { kind: 'left' };
    const now = await sure(() => deps.idempotency.get(bucketKey));
    if (now?.revision !== held.revision) return { kind: 'moved' };
  }
}

/**
 * Gives back, in the background, a claim this request may have stored though the store never
 * said so: the request was refused 503 and never runs, and every retry of its key would wait for
 * its answer until its deadline (a minute; the cluster chaos run had four calls whose eight tries
 * of 20 s each all waited so). The key is read until the store answers (for up to
 * ORPHAN_RELEASE_MS) and deleted if its record still names this request (compare-and-set).
 */
function releaseIfMine(store: IdempotencyStore, key: string, requestId: string): void {
  void retryFor(ORPHAN_RELEASE_MS, async () => {
    const held = await store.get(key);
    if (held?.record.requestId === requestId) await store.release(key, held.revision);
  }).catch(() => undefined);
}

/**
 * A read or write of the store, tried again for STORE_RETRY_MS (each try repeats a compare-and-set
 * or a read, so trying again never takes a key twice). If it still fails, whether another try
 * holds the key is unknown, and running could run the request twice: refused, to be retried.
 */
async function sure<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await retryFor(STORE_RETRY_MS, op);
  } catch (e) {
    if (e instanceof SluiceError) throw e;
    throw busUnavailable('The gateway cannot reach its Idempotency-Key store');
  }
}
