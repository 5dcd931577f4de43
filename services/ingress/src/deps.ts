import type { EventType, SluiceConfig, SluiceEvent } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import type { ReplyInbox } from './inbox.js';
import type { TenantIndex } from './tenants.js';

/** What both front doors need; `startIngress` builds it from the service context. */
export interface IngressDeps {
  /** The live config (replaced when the control bucket changes). */
  config(): SluiceConfig;
  /** Tenants by key hash, rebuilt with the config. */
  tenants(): TenantIndex;
  /** Publishes an event to the stream and resolves on its ack. */
  publish(event: SluiceEvent<EventType>, traceparent: string): Promise<void>;
  /** The connected NATS server's max_payload in bytes: every event of a request must fit it (fits.ts). */
  maxPayload(): number;
  /** Where HTTP requests wait for their answers. */
  inbox: ReplyInbox;
  log: Logger;
  now(): number;
}
