import type { EventType } from './events.js';

/** Every subject Sluice uses is built here; no service writes a subject string inline. */
export const Subjects = {
  /** The NATS front door: requests for a tenant. */
  chat: (tenant: string) => `sluice.chat.${tenant}`,
  chatAll: 'sluice.chat.*',
  /** Async results by request id. */
  result: (requestId: string) => `sluice.results.${requestId}`,
  /** One event of a type for a tenant. */
  event: (type: EventType, tenant: string) => `sluice.evt.${type}.${tenant}`,
  /** Filter for one event type, every tenant. */
  eventsOf: (type: EventType) => `sluice.evt.${type}.*`,
  /** Filter for one event family (`invoke`, `circuit`, ...), every tenant. */
  family: (family: string) => `sluice.evt.${family}.>`,
  /** Filter for one event family (`chat`, ...) of one tenant. */
  familyOf: (family: string, tenant: string) => `sluice.evt.${family}.*.${tenant}`,
  allEvents: 'sluice.evt.>',
} as const;

/** Headers on front-door requests and on events. */
export const Headers = {
  tenantKey: 'sluice-key',
  cache: 'sluice-cache',
  traceparent: 'traceparent',
  tracestate: 'tracestate',
} as const;

/** Tenant ids are subject tokens and KV key parts. */
export const TENANT_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
