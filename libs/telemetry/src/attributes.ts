/**
 * Every span attribute name Sluice sets, in one place: a dashboard or a Jaeger tag search can be
 * written against this list, and a rename happens here or nowhere. Messaging names follow the
 * OpenTelemetry messaging semantic conventions (semconv 1.45); `sluice.*` are ours.
 */
export const SpanAttributes = {
  messagingSystem: 'messaging.system',
  messagingDestination: 'messaging.destination.name',
  /** The destination is an inbox made for one request (a reply subject). */
  messagingDestinationTemporary: 'messaging.destination.temporary',
  messagingMessageId: 'messaging.message.id',
  messagingOperationType: 'messaging.operation.type',
  /** The system's own name for the operation (`publish` for NATS). */
  messagingOperationName: 'messaging.operation.name',
  messagingConsumerGroup: 'messaging.consumer.group.name',
  messagingBatchMessageCount: 'messaging.batch.message_count',
  httpRoute: 'http.route',
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

export const MessagingSystem = { nats: 'nats' } as const;

/**
 * Values of `messaging.operation.type`. Semconv 1.45 replaced `publish` with `send` (and
 * `deliver` with `process`); `messaging.operation.name` still says `publish`, NATS's word.
 */
export const MessagingOperation = { send: 'send', process: 'process' } as const;
export type MessagingOperation = (typeof MessagingOperation)[keyof typeof MessagingOperation];
