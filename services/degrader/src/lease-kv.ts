import type { KV } from '@nats-io/kv';
import { createOnce, decodeJson, encodeJson, isWrongRevision, updateOnce } from '@sluice/bus';
import type { Logger } from '@sluice/telemetry';
import { asLease, leads, leaseMove } from './lease.js';

/** The key of the degrader's lease in `sluice_leases`. */
const LEASE_KEY = 'degrader';

export interface HeldLease {
  /** True while this replica may decide and write the level (lease.ts `leads`). */
  leading(): boolean;
  /** Reads the lease and creates, renews or takes it over (called every third of the lease by `holdLease`). */
  beat(): Promise<void>;
  /** Stops beating; a leader hands the lease back (until 0) so a follower takes over at its next beat, not a lease later. */
  stop(): Promise<void>;
}

export interface LeaseOptions {
  holder: string;
  /** Read at every beat, so a config change applies at the next one. */
  leaseMs: () => number;
  log: Logger;
  now?: () => number;
}

/**
 * Holds the degrader's lease in `kv`: a beat every third of `leaseMs` reads the record and moves
 * it by compare-and-set (lease.ts). A lost race or a NATS error leaves the replica following; a
 * leader that cannot renew stops leading a third of a lease before its record ends, which is
 * before any follower may take it. Cost: one get and at most one write per replica per beat.
 */
export function openLease(kv: KV, opts: LeaseOptions): HeldLease {
  const now = opts.now ?? Date.now;
  let until: number | undefined;
  let revision = 0;
  let wasLeading = false;
  let stopped = false;
  let inflight: Promise<void> = Promise.resolve();
  const note = () => {
    const leading = leads(until, now(), opts.leaseMs());
    if (leading !== wasLeading)
      opts.log.info({ holder: opts.holder, until }, leading ? 'took the degrader lease: leading' : 'lost the degrader lease: following');
    wasLeading = leading;
  };
  const beat = async () => {
    try {
      const e = await kv.get(LEASE_KEY);
      if (stopped) return;
      const current = e && e.operation === 'PUT' && e.length > 0 ? asLease(safeJson(e.value)) : undefined;
      const at = now();
      if (leaseMove(current, opts.holder, at) === 'wait') {
        until = undefined;
      } else {
        const next = encodeJson({ holder: opts.holder, until: at + opts.leaseMs() });
        // a deleted key, or a value that is not a lease, is replaced on its revision like a lease;
        // the Once writes are what lets only one of two replicas that read one revision take it
        // on a cluster (nats-server#4320, docs/cluster.md)
        revision = e ? await updateOnce(kv, LEASE_KEY, next, e.revision) : await createOnce(kv, LEASE_KEY, next);
        until = at + opts.leaseMs();
      }
    } catch (err) {
      if (isWrongRevision(err)) until = undefined;
      else opts.log.warn({ err }, 'degrader lease: beat failed; leading until the lease held runs out');
    }
    note();
  };
  return {
    leading: () => leads(until, now(), opts.leaseMs()),
    beat: () => (inflight = inflight.then(beat)),
    async stop() {
      stopped = true;
      await inflight;
      if (until === undefined) return;
      until = undefined;
      note();
      await updateOnce(kv, LEASE_KEY, encodeJson({ holder: opts.holder, until: 0 }), revision).catch(() => undefined);
    },
  };
}

function safeJson(bytes: Uint8Array): unknown {
  try {
    return decodeJson<unknown>(bytes);
  } catch {
    return undefined;
  }
}

/**
 * Beats every third of the lease (the period follows `leaseMs` changes) until stopped, and at
 * once when the lease is handed back. Cost: a watch on one key.
 *
 * @example
 * const lease = holdLease(buckets.leases, { holder: `${hostname()}-${process.pid}`, leaseMs: () => 6000, log });
 * if (lease.leading()) ...
 */
export async function holdLease(kv: KV, opts: LeaseOptions): Promise<HeldLease> {
  const lease = openLease(kv, opts);
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const schedule = () => {
    if (!stopped) timer = setTimeout(() => void lease.beat().finally(schedule), Math.max(50, Math.floor(opts.leaseMs() / 3)));
  };
  await lease.beat();
  schedule();
  // a lease handed back (or deleted) is taken at once rather than at the next beat
  const watcher = await kv.watch({ key: LEASE_KEY });
  void (async () => {
    for await (const e of watcher) {
      if (stopped || lease.leading()) continue;
      const record = e.operation === 'PUT' && e.length > 0 ? asLease(safeJson(e.value)) : undefined;
      if (!record || record.until <= (opts.now ?? Date.now)()) void lease.beat();
    }
  })();
  return {
    ...lease,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      watcher.stop();
      await lease.stop();
    },
  };
}
