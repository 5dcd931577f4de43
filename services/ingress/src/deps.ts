import { awaitResult, fileStore, publishEvent, readResult, storeResult, type FileStore, type ServiceContext } from '@sluice/bus';
import { Subjects, Topology, type ChatAccepted, type ChatReply, type EventType, type SluiceConfig, type SluiceEvent } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import type { BatchStore } from './batch-store.js';
import { idempotencyStore, type IdempotencyStore } from './idempotency.js';
import type { ReplyInbox } from './inbox.js';
import type { KeyIndex } from './keys.js';
import type { OverloadGate } from './overload-gate.js';
import { indexTenants, type TenantIndex } from './tenants.js';

/** What both front doors need; `ingressDeps` builds it from the service context. */
export interface IngressDeps {
  /** The live config (replaced when the control bucket changes). */
  config(): SluiceConfig;
  /** Tenants by key hash, rebuilt with the config. */
  tenants(): TenantIndex;
  /** Virtual keys by key hash, as the `sluice_keys` bucket has them now (keys-watch.ts). */
  keys(): KeyIndex;
  /** Publishes an event to the stream and resolves on its ack. */
  publish(event: SluiceEvent<EventType>, traceparent: string): Promise<void>;
  /**
   * Tells the pipeline the client left before its answer ended (core NATS, `Subjects.cancel`): the
   * invoker stops the upstream call. Fire and forget; a request already answered ignores it.
   */
  cancel(requestId: string): void;
  /** The connected NATS server's max_payload in bytes: every event of a request must fit it (fits.ts). */
  maxPayload(): number;
  /**
   * The stored result of a request answered later (held, async) for `tenant`: its answer, the
   * `held` notice while it waits, or undefined (unknown, answered directly, expired, another tenant's).
   */
  result(tenant: string, requestId: string): Promise<ChatReply | undefined>;
  /**
   * The stored result of a request for `tenant`, waited for until `until` (epoch ms) when there is
   * none yet; undefined then. A retry with an `Idempotency-Key` waits for the first try's answer so.
   */
  awaitResult(tenant: string, requestId: string, until: number): Promise<ChatReply | undefined>;
  /** Stores an async request's `queued` notice on its result subject; resolves on the stream's ack. */
  storeNotice(tenant: string, notice: ChatAccepted): Promise<void>;
  /** Idempotency keys (`sluice_idempotency`): which request each key of a tenant started. */
  idempotency: IdempotencyStore;
  /** The Files API's files (the `sluice_files` object store), per tenant. */
  files: FileStore;
  /** Batches (`sluice_batches`), as the batch routes read and write them. */
  batches: BatchStore;
  /** Where HTTP requests wait for their answers. */
  inbox: ReplyInbox;
  /** The in-flight and backlog bounds both doors take a place from (overload-gate.ts). */
  overload: OverloadGate;
  log: Logger;
  now(): number;
}

/**
 * The doors' deps on a live bus: the config and the tenant index follow the control bucket (the
 * index is rebuilt once per new config, not per request), virtual keys follow `keys`, events are published with the
 * request's traceparent, and `max_payload` is the connected server's.
 */
export function ingressDeps(
  { bus, buckets, control, log }: Pick<ServiceContext, 'bus' | 'buckets' | 'control' | 'log'>,
  inbox: ReplyInbox,
  keys: () => KeyIndex,
  batches: BatchStore,
  overload: OverloadGate,
): IngressDeps {
  let config = control.config();
  let tenants = indexTenants(config);
  control.onChange(() => {
    // onChange also fires for degrade changes; only a new config changes the tenants
    if (control.config() === config) return;
    config = control.config();
    tenants = indexTenants(config);
  });
  return {
    config: () => config,
    tenants: () => tenants,
    keys,
    publish: async (event, traceparent) => {
      await publishEvent(bus.js, event, { traceparent });
    },
    cancel: (requestId) => {
      try {
        bus.nc.publish(Subjects.cancel(requestId));
      } catch (err) {
        // a closed connection: nothing upstream can be stopped from here any more
        log.warn({ err, requestId }, 'could not publish a cancel');
      }
    },
    // the server's own limit, read again after a reconnect (another server may have another)
    maxPayload: () => bus.nc.info?.max_payload ?? Topology.maxPayloadBytes,
    result: (tenant, requestId) => readResult(bus, tenant, requestId),
    awaitResult: (tenant, requestId, until) => awaitResult(bus, tenant, requestId, until),
    storeNotice: (tenant, notice) => storeResult(bus, tenant, Subjects.result(notice.requestId), notice),
    idempotency: idempotencyStore(buckets.idempotency),
    files: fileStore(buckets.files),
    batches,
    inbox,
    overload,
    log,
    now: Date.now,
  };
}
