import { ATTR_HTTP_ROUTE } from '@opentelemetry/semantic-conventions';
import type {
  ATTR_MESSAGING_BATCH_MESSAGE_COUNT,
  ATTR_MESSAGING_CONSUMER_GROUP_NAME,
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_DESTINATION_TEMPORARY,
  ATTR_MESSAGING_MESSAGE_ID,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM,
  MESSAGING_OPERATION_TYPE_VALUE_PROCESS,
  MESSAGING_OPERATION_TYPE_VALUE_SEND,
} from '@opentelemetry/semantic-conventions/incubating';

/**
 * Every span attribute name Sluice sets, in one place: a dashboard or a Jaeger tag search can be
 * written against this list, and a rename happens here or nowhere. Standard names come from
 * `@opentelemetry/semantic-conventions` (pinned at 1.45); `sluice.*` are ours.
 *
 * The messaging names are still incubating in semconv, and the package asks that those be copied,
 * not imported at run time (its incubating entry may break in a minor version, and it is 1 MB of
 * JavaScript in every process). So they are copied, and `satisfies` checks each copy against the
 * package's own type: a semconv upgrade that renames one fails the typecheck here.
 */
export const SpanAttributes = {
  messagingSystem: 'messaging.system' satisfies typeof ATTR_MESSAGING_SYSTEM,
  messagingDestination: 'messaging.destination.name' satisfies typeof ATTR_MESSAGING_DESTINATION_NAME,
  /** The destination is an inbox made for one request (a reply subject). */
  messagingDestinationTemporary: 'messaging.destination.temporary' satisfies typeof ATTR_MESSAGING_DESTINATION_TEMPORARY,
  messagingMessageId: 'messaging.message.id' satisfies typeof ATTR_MESSAGING_MESSAGE_ID,
  messagingOperationType: 'messaging.operation.type' satisfies typeof ATTR_MESSAGING_OPERATION_TYPE,
  /** The system's own name for the operation (`publish` for NATS). */
  messagingOperationName: 'messaging.operation.name' satisfies typeof ATTR_MESSAGING_OPERATION_NAME,
  messagingConsumerGroup: 'messaging.consumer.group.name' satisfies typeof ATTR_MESSAGING_CONSUMER_GROUP_NAME,
  messagingBatchMessageCount: 'messaging.batch.message_count' satisfies typeof ATTR_MESSAGING_BATCH_MESSAGE_COUNT,
  httpRoute: ATTR_HTTP_ROUTE,
  /** The id a client sees as `x-sluice-request-id`: search Jaeger by it. */
  requestId: 'sluice.request_id',
  tenant: 'sluice.tenant',
  eventType: 'sluice.event_type',
  /** Stream sequence of the message being processed. */
  streamSeq: 'sluice.stream_seq',
  /** 1 on first delivery; more means a redelivery (a nak or a replica that died). */
  deliveryCount: 'sluice.delivery_count',
} as const;
export type SpanAttribute = (typeof SpanAttributes)[keyof typeof SpanAttributes];

/** Values of `messaging.system`: semconv has no value for NATS, so this one is ours. */
export const MessagingSystem = { nats: 'nats' } as const;

/**
 * Values of `messaging.operation.type`. Semconv 1.45 replaced `publish` with `send` (and
 * `deliver` with `process`); `messaging.operation.name` still says `publish`, NATS's word.
 */
export const MessagingOperation = {
  send: 'send' satisfies typeof MESSAGING_OPERATION_TYPE_VALUE_SEND,
  process: 'process' satisfies typeof MESSAGING_OPERATION_TYPE_VALUE_PROCESS,
} as const;
export type MessagingOperation = (typeof MessagingOperation)[keyof typeof MessagingOperation];
