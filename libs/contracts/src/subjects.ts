import type { AnyEvent, EventType } from './events.js';
import type { Priority } from './spend.js';

/** Every subject Sluice uses is built here; no service writes a subject string inline. */
export const Subjects = {
  /** The NATS front door: requests for a tenant. */
  chat: (tenant: string) => `sluice.chat.${tenant}`,
  chatAll: 'sluice.chat.*',
  /**
   * A client's cancel of its request: publish anything here (core NATS) and the invoker stops
   * the upstream call. HTTP ingress publishes it when the client closes its connection early.
   */
  cancel: (requestId: string) => `sluice.cancel.${requestId}`,
  cancelAll: 'sluice.cancel.*',
  /** Budget alerts for a tenant (core NATS; each is also a `budget.threshold_crossed` event). */
  alerts: (tenant: string) => `sluice.alerts.${tenant}`,
  alertsAll: 'sluice.alerts.*',
  /**
   * The answer of a request answered later (held at degrade level 4, or async), by request id:
   * captured by the SLUICE_RESULTS stream, so it can be read after it was published.
   */
  result: (requestId: string) => `sluice.results.${requestId}`,
  resultsAll: 'sluice.results.>',
  /**
   * A tenant's reply inboxes: its applications connect with nats.js `inboxPrefix: inbox(tenant)`,
   * only that tenant's NATS user may subscribe under it, and the NATS door takes a request's
   * reply subject only under the asking tenant's prefix (docs/nats-security.md).
   */
  inbox: (tenant: string) => `sluice.inbox.${tenant}`,
  inboxAll: 'sluice.inbox.>',
  /** One event of a type for a tenant. */
  event: (type: EventType, tenant: string) => `sluice.evt.${type}.${tenant}`,
  /**
   * Filter for one event type, every tenant. Not for `chat.routed`, whose subject has a lane token
   * before the tenant (`routed`, `routedIn`, `routedAll`).
   */
  eventsOf: (type: EventType) => `sluice.evt.${type}.*`,
  /**
   * `chat.routed` in its lane: `sluice.evt.chat.routed.<lane>.<tenant>`. nats-server 2.9 gives a
   * consumer one filter subject and no priority groups, so the lane is a token and each lane has
   * its own invoker consumer (`Consumers.invokerLane`), drained by priority.
   */
  routed: (lane: Priority, tenant: string) => `sluice.evt.chat.routed.${lane}.${tenant}`,
  /** Filter for one lane's `chat.routed`, every tenant. */
  routedIn: (lane: Priority) => `sluice.evt.chat.routed.${lane}.*`,
  /** Filter for every lane's `chat.routed`. */
  routedAll: 'sluice.evt.chat.routed.*.*',
  /** Filter for one event family (`invoke`, `circuit`, ...), every tenant. */
  family: (family: string) => `sluice.evt.${family}.>`,
  /** Filter for one event family (`chat`, ...) of one tenant. */
  familyOf: (family: string, tenant: string) => `sluice.evt.${family}.*.${tenant}`,
  allEvents: 'sluice.evt.>',
  /** Dead letters: events a consumer parked after a bounded number of tries (SLUICE_DLQ). */
  parked: (durable: string) => `sluice.dlq.parked.${durable}`,
  parkedAll: 'sluice.dlq.parked.>',
  /** Parked events sent back to the one consumer that parked them (`npm run config -- replay`). */
  replay: (durable: string) => `sluice.dlq.replay.${durable}`,
} as const;

/** The subject an event is published on: `event(type, tenant)`, with the lane token for `chat.routed`. */
export function subjectOf(event: AnyEvent): string {
  if (event.type === 'chat.routed') return Subjects.routed(event.data.lane, event.tenant);
  return Subjects.event(event.type, event.tenant);
}

/** Headers on front-door requests and on events. */
export const Headers = {
  tenantKey: 'sluice-key',
  cache: 'sluice-cache',
  /** NATS door: seconds the answer may be served from the cache (HTTP `x-sluice-cache-ttl`). */
  cacheTtl: 'sluice-cache-ttl',
  /** NATS door: the cache namespace inside the tenant (HTTP `x-sluice-cache-namespace`). */
  cacheNamespace: 'sluice-cache-namespace',
  /** NATS door: `true` asks for an async answer (HTTP `x-sluice-async`): a `queued` reply now, the answer on `sluice.results.<id>`. */
  async: 'sluice-async',
  /**
   * NATS door: the request's idempotency key (HTTP `Idempotency-Key`): its answer is kept, and a
   * retry with the same key and body gets that answer instead of running again.
   */
  idempotencyKey: 'sluice-idempotency-key',
  /** NATS door: the OpenAI API a request is for (`chat.completions`, the default; `responses`; `embeddings`). */
  endpoint: 'sluice-endpoint',
  /** On a message in SLUICE_RESULTS: the tenant whose request it answers (only that tenant may fetch it). */
  resultTenant: 'Sluice-Tenant',
  /** On a message in SLUICE_RESULTS: the webhook (an `alerts.webhooks` id) the answer is POSTed to. */
  resultWebhook: 'Sluice-Webhook',
  /** NATS door: the webhook an async request's answer is POSTed to (HTTP `x-sluice-webhook`). */
  webhook: 'sluice-webhook',
  traceparent: 'traceparent',
  tracestate: 'tracestate',
  /** On a dead letter: the durable that parked it, where it came from, why, after how many tries. */
  parkedDurable: 'Sluice-Parked-Durable',
  parkedSeq: 'Sluice-Parked-Seq',
  parkedSubject: 'Sluice-Parked-Subject',
  parkedError: 'Sluice-Parked-Error',
  parkedDeliveries: 'Sluice-Parked-Deliveries',
} as const;

/** True for a reply subject that is a stored result (`Subjects.result`), not a client's inbox. */
export function isResultSubject(subject: string): boolean {
  return subject.startsWith('sluice.results.');
}

/** Tenant ids are subject tokens and KV key parts. */
export const TENANT_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
