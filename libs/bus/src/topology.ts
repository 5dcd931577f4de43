import { nanos } from '@nats-io/transport-node';
import { DiscardPolicy, RetentionPolicy, StorageType, type StreamConfig } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { Topology } from '@sluice/contracts';
import type { Bus } from './connect.js';
import { createOrFind } from './create.js';

export interface Buckets {
  limits: KV;
  cache: KV;
  control: KV;
  budgets: KV;
  results: KV;
  /** Virtual keys by id (the admin API writes, ingress watches). */
  keys: KV;
  /** The config's key hashes (`putConfig` writes them; ingress and the ledger read them with the config). */
  tenantKeys: KV;
  /** The semantic cache's entries (the cache writes, every cache replica watches). */
  semantic: KV;
  /** Coalescing records: who leads each exact key in flight. */
  inflight: KV;
  /** Circuits per deployment, shared by invoker replicas. */
  circuits: KV;
  /** Leases of single-leader loops (the degrader). */
  leases: KV;
  /** Batches by id (`BatchRecord`): ingress's batch routes and runner. */
  batches: KV;
  /** Batch lines sent through an upstream's own Batch API, and those upstream batches (the invoker). */
  upstreamBatches: KV;
  /** The Files API's files (`fileStore` reads and writes them). */
  files: ObjectStore;
  /** Idempotency keys of requests: which request each started (ingress, compare-and-set). */
  idempotency: KV;
}

export interface TopologyOptions {
  replicas?: number;
  maxAgeHours?: number;
  /** How long SLUICE_RESULTS keeps a result (default `Topology.results.maxAgeHours`). */
  resultsMaxAgeHours?: number;
  cacheTtlSeconds?: number;
}

/** Creates the event stream, the dead-letter and results streams and the KV buckets if missing; safe to call from every replica at start. */
export async function ensureTopology(bus: Bus, opts: TopologyOptions = {}): Promise<Buckets> {
  const replicas = opts.replicas ?? 1;
  const s = Topology.stream;
  const config = {
    name: s.name,
    subjects: [...s.subjects],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    max_age: nanos((opts.maxAgeHours ?? s.maxAgeHours) * 3_600_000),
    duplicate_window: nanos(s.duplicateWindowMs),
    num_replicas: replicas,
  };
  const d = Topology.deadLetters;
  const r = Topology.results;
  await Promise.all([
    ensureStream(bus, {
      ...config,
      name: r.name,
      subjects: [...r.subjects],
      max_age: nanos((opts.resultsMaxAgeHours ?? r.maxAgeHours) * 3_600_000),
      max_msgs_per_subject: r.maxMsgsPerSubject,
      duplicate_window: nanos(r.duplicateWindowMs),
      allow_direct: true,
    }),
    ensureStream(bus, config),
    ensureStream(bus, {
      ...config,
      name: d.name,
      subjects: [...d.subjects],
      max_age: nanos(d.maxAgeHours * 3_600_000),
      duplicate_window: nanos(d.duplicateWindowMs),
    }),
  ]);
  const kvm = new Kvm(bus.js);
  const b = Topology.buckets;
  // a compare-and-set bucket is read through its stream's leader (contracts Topology.buckets):
  // `allow_direct: false` does that for this handle, and for every later one of a stream made here
  const open = (bucket: { name: string; history: number; compareAndSet: boolean }, ttlSeconds: number) =>
    kvm.create(bucket.name, {
      history: bucket.history,
      replicas,
      ...(bucket.compareAndSet ? { allow_direct: false } : {}),
      ...(ttlSeconds > 0 ? { ttl: ttlSeconds * 1000 } : {}),
    });
  const objm = new Objm(bus.js);
  const f = Topology.files;
  const resultsMaxAgeSeconds = (opts.resultsMaxAgeHours ?? r.maxAgeHours) * 3600;
  const [limits, cache, control, budgets, results, keys, semantic, inflight, circuits, leases, batches, upstreamBatches, files, idempotency, tenantKeys] =
    await Promise.all([
      open(b.limits, b.limits.ttlSeconds),
      open(b.cache, opts.cacheTtlSeconds ?? b.cache.ttlSeconds),
      open(b.control, b.control.ttlSeconds),
      open(b.budgets, b.budgets.ttlSeconds),
      open(b.results, b.results.ttlSeconds),
      open(b.keys, b.keys.ttlSeconds),
      open(b.semantic, opts.cacheTtlSeconds ?? b.semantic.ttlSeconds),
      open(b.inflight, b.inflight.ttlSeconds),
      open(b.circuits, b.circuits.ttlSeconds),
      open(b.leases, b.leases.ttlSeconds),
      open(b.batches, b.batches.ttlSeconds),
      open(b.upstreamBatches, b.upstreamBatches.ttlSeconds),
      // another replica creating it at the same moment makes create fail; the store is there then
      objm.create(f.name, { replicas }).catch(() => objm.open(f.name)),
      // a key lives as long as the answer it points to
      open(b.idempotency, resultsMaxAgeSeconds || b.idempotency.ttlSeconds),
      open(b.tenantKeys, b.tenantKeys.ttlSeconds),
    ]);
  return { limits, cache, control, budgets, results, keys, semantic, inflight, circuits, leases, batches, upstreamBatches, files, idempotency, tenantKeys };
}

async function ensureStream(bus: Bus, config: Partial<StreamConfig> & { name: string }): Promise<void> {
  try {
    await bus.jsm.streams.info(config.name);
  } catch {
    await createOrFind(
      () => bus.jsm.streams.add(config),
      () => bus.jsm.streams.info(config.name),
    );
  }
}
