/** Stream and bucket names and their shapes. Ensured at start by every service (idempotent). */
export const Topology = {
  stream: {
    name: 'SLUICE_EVENTS',
    subjects: ['sluice.evt.>'],
    /** Default max age; `SLUICE_STREAM_MAX_AGE_HOURS` overrides. */
    maxAgeHours: 24 * 7,
    duplicateWindowMs: 2 * 60_000,
  },
  /**
   * Dead letters: what a consumer parked (`sluice.dlq.parked.<durable>`) and what an operator
   * sent back to it (`sluice.dlq.replay.<durable>`). Kept longer than the events, so a parked
   * event outlives its original while someone fixes the cause.
   */
  deadLetters: {
    name: 'SLUICE_DLQ',
    subjects: ['sluice.dlq.>'],
    maxAgeHours: 24 * 30,
    duplicateWindowMs: 2 * 60_000,
  },
  /**
   * Final answers of requests answered later: held at degrade level 4 (docs/degradation.md) or
   * sent async, and answers kept for an Idempotency-Key retry. The terminal stage publishes the
   * answer on `sluice.results.<requestId>` and awaits this stream's ack before it acks its input
   * (bus `answer`), one message kept per subject: the latest, an `accepted`/`held` notice until the
   * answer replaces it. Ingress serves it at `GET /v1/sluice/requests/{id}/result`;
   * a NATS client reads it with `SluiceClient.result`. Kept `maxAgeHours`
   * (`SLUICE_RESULTS_MAX_AGE_HOURS` overrides).
   */
  results: {
    name: 'SLUICE_RESULTS',
    subjects: ['sluice.results.>'],
    maxAgeHours: 24,
    maxMsgsPerSubject: 1,
    duplicateWindowMs: 2 * 60_000,
  },
  /**
   * The largest message the shipped NATS configs accept (`max_payload`): the stack's own
   * nats-server, docker-compose and the cluster config all set exactly this. NATS's default is
   * 1 MB, too small for a 1 MiB request body plus its envelope and answer; 8 MiB is the most
   * NATS recommends. Ingress reads the limit of the server it is connected to and sizes
   * requests by that, so a server configured otherwise is still safe.
   */
  maxPayloadBytes: 8 * 1024 * 1024,
  /**
   * The Files API's files (`POST /v1/files`, a batch's input, output and error files): a JetStream
   * object store, one object per file named by its id (`file-` + 24 base32), its tenant,
   * filename, purpose and creation time in the object's metadata, its SHA-256 the store's own digest.
   * Kept until deleted.
   */
  files: { name: 'sluice_files' },
  /**
   * KV buckets. `compareAndSet`: its writers compare-and-set (several replicas update one key), so
   * every read of it goes through the stream's leader, never a direct get that any replica answers:
   * after a leader is killed, nats-server 2.9.10's replicas number the stream's messages
   * differently (their counts of failed proposals drift apart; later releases resync them on a
   * leader change, nats-server#4365), and a revision read from another replica is in a numbering
   * the leader's check does not use: most writes that expect it fail, and one that matches by
   * chance stores a stale value over newer ones (docs/cluster.md). The other buckets are written
   * by one writer per key or overwritten whole, and read from the nearest replica.
   */
  buckets: {
    limits: { name: 'sluice_limits', ttlSeconds: 0, history: 1, compareAndSet: true },
    cache: { name: 'sluice_cache', ttlSeconds: 3600, history: 1, compareAndSet: false },
    /**
     * The semantic index's entries (vector, question, the exact key of the answer), by exact key;
     * every cache replica watches it and rebuilds its index from it. Max age follows `cache.ttlSeconds`.
     */
    semantic: { name: 'sluice_semantic', ttlSeconds: 3600, history: 1, compareAndSet: false },
    /** Coalescing: who leads each exact key in flight, and its answer once it has one. Records carry their own times. */
    inflight: { name: 'sluice_inflight', ttlSeconds: 600, history: 1, compareAndSet: true },
    /** One circuit per deployment, shared by every invoker replica (compare-and-set). */
    circuits: { name: 'sluice_circuits', ttlSeconds: 0, history: 1, compareAndSet: true },
    /** Leases of the single-leader loops (the degrader's), records with their own expiry, compare-and-set. */
    leases: { name: 'sluice_leases', ttlSeconds: 0, history: 1, compareAndSet: true },
    control: { name: 'sluice_control', ttlSeconds: 0, history: 5, compareAndSet: false },
    budgets: { name: 'sluice_budgets', ttlSeconds: 0, history: 1, compareAndSet: true },
    results: { name: 'sluice_results', ttlSeconds: 3600, history: 1, compareAndSet: false },
    /**
     * Idempotency keys of requests (`Idempotency-Key`), per tenant: the request each key started and
     * a fingerprint of its body, created by ingress (compare-and-set). Kept as long as SLUICE_RESULTS
     * keeps answers (`SLUICE_RESULTS_MAX_AGE_HOURS`), so a key is honoured while its answer is there.
     */
    idempotency: { name: 'sluice_idempotency', ttlSeconds: 24 * 3600, history: 1, compareAndSet: true },
    /** Virtual keys by id (`VirtualKey`), written by the admin API, watched by ingress. */
    keys: { name: 'sluice_keys', ttlSeconds: 0, history: 5, compareAndSet: true },
    /**
     * The config's key hashes (`ConfigKeyHashes` under `KeyHashKeys.config`), written with the config
     * by the operator (`putConfig`), read only by ingress and the ledger.
     */
    tenantKeys: { name: 'sluice_tenant_keys', ttlSeconds: 0, history: 5, compareAndSet: false },
    /** Batches by id (`BatchRecord`), written by ingress's batch routes and runner (compare-and-set), watched by every ingress replica. */
    batches: { name: 'sluice_batches', ttlSeconds: 0, history: 1, compareAndSet: true },
    /**
     * Batch lines waiting for or inside an upstream's own batch (`line.<requestId>`) and the
     * upstream batches being driven (`group.<id>`), written by the invoker (compare-and-set).
     */
    upstreamBatches: { name: 'sluice_upstream_batches', ttlSeconds: 0, history: 1, compareAndSet: true },
  },
} as const;

/** Durable name of the consumer that takes replayed dead letters back to `durable` (on SLUICE_DLQ). */
export const replayDurable = (durable: string) => `${durable}-replay`;

/** Keys in the control bucket. */
export const ControlKeys = {
  config: 'config',
  degrade: 'degrade',
  /** Canaries their guard rolled back (`CanaryRollbacks`): the router sends their traffic to the baseline. */
  canaries: 'canaries',
} as const;
