import { ATTR_ERROR_TYPE, ATTR_HTTP_ROUTE, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT } from '@opentelemetry/semantic-conventions';
import type {
  ATTR_GEN_AI_OPERATION_NAME,
  ATTR_GEN_AI_PROVIDER_NAME,
  ATTR_GEN_AI_REQUEST_MODEL,
  ATTR_GEN_AI_RESPONSE_FINISH_REASONS,
  ATTR_GEN_AI_RESPONSE_ID,
  ATTR_GEN_AI_RESPONSE_MODEL,
  ATTR_GEN_AI_TOKEN_TYPE,
  ATTR_GEN_AI_USAGE_INPUT_TOKENS,
  ATTR_GEN_AI_USAGE_OUTPUT_TOKENS,
  GEN_AI_OPERATION_NAME_VALUE_CHAT,
  GEN_AI_OPERATION_NAME_VALUE_EMBEDDINGS,
  GEN_AI_PROVIDER_NAME_VALUE_AZURE_AI_OPENAI,
  GEN_AI_PROVIDER_NAME_VALUE_OPENAI,
  GEN_AI_TOKEN_TYPE_VALUE_INPUT,
  GEN_AI_TOKEN_TYPE_VALUE_OUTPUT,
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
 * The messaging and GenAI names are still incubating in semconv, and the package asks that those be copied,
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
  // an upstream model call (the invoker's `chat {model}` client span, and the gen_ai.client.* metrics)
  genAiOperation: 'gen_ai.operation.name' satisfies typeof ATTR_GEN_AI_OPERATION_NAME,
  genAiProvider: 'gen_ai.provider.name' satisfies typeof ATTR_GEN_AI_PROVIDER_NAME,
  /** The model named in the body sent upstream (a deployment's `upstreamModel`, else Sluice's model). */
  genAiRequestModel: 'gen_ai.request.model' satisfies typeof ATTR_GEN_AI_REQUEST_MODEL,
  /** The model the upstream says answered (`model` of its answer). */
  genAiResponseModel: 'gen_ai.response.model' satisfies typeof ATTR_GEN_AI_RESPONSE_MODEL,
  genAiResponseId: 'gen_ai.response.id' satisfies typeof ATTR_GEN_AI_RESPONSE_ID,
  genAiFinishReasons: 'gen_ai.response.finish_reasons' satisfies typeof ATTR_GEN_AI_RESPONSE_FINISH_REASONS,
  genAiInputTokens: 'gen_ai.usage.input_tokens' satisfies typeof ATTR_GEN_AI_USAGE_INPUT_TOKENS,
  genAiOutputTokens: 'gen_ai.usage.output_tokens' satisfies typeof ATTR_GEN_AI_USAGE_OUTPUT_TOKENS,
  /** `input` or `output` on a `gen_ai.client.token.usage` point. */
  genAiTokenType: 'gen_ai.token.type' satisfies typeof ATTR_GEN_AI_TOKEN_TYPE,
  serverAddress: ATTR_SERVER_ADDRESS,
  serverPort: ATTR_SERVER_PORT,
  /** A failed operation's class of error (an HTTP status, `timeout`, ...). */
  errorType: ATTR_ERROR_TYPE,
  /** The id a client sees as `x-sluice-request-id`: search Jaeger by it. */
  requestId: 'sluice.request_id',
  tenant: 'sluice.tenant',
  eventType: 'sluice.event_type',
  /** Stream sequence of the message being processed. */
  streamSeq: 'sluice.stream_seq',
  /** 1 on first delivery; more means a redelivery (a nak or a replica that died). */
  deliveryCount: 'sluice.delivery_count',
  /** The configured deployment (a key of `deployments` in the config) a call went to. */
  deployment: 'sluice.deployment',
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

/** Values of `gen_ai.operation.name` Sluice sends: the Responses API is a chat operation too (semconv has no value of its own for it). */
export const GenAiOperation = {
  chat: 'chat' satisfies typeof GEN_AI_OPERATION_NAME_VALUE_CHAT,
  embeddings: 'embeddings' satisfies typeof GEN_AI_OPERATION_NAME_VALUE_EMBEDDINGS,
} as const;
export type GenAiOperation = (typeof GenAiOperation)[keyof typeof GenAiOperation];

/** Values of `gen_ai.provider.name`: a deployment of kind `azure` is Azure OpenAI, every other one speaks OpenAI's API. */
export const GenAiProvider = {
  openai: 'openai' satisfies typeof GEN_AI_PROVIDER_NAME_VALUE_OPENAI,
  azureOpenai: 'azure.ai.openai' satisfies typeof GEN_AI_PROVIDER_NAME_VALUE_AZURE_AI_OPENAI,
} as const;
export type GenAiProvider = (typeof GenAiProvider)[keyof typeof GenAiProvider];

/** Values of `gen_ai.token.type`. */
export const GenAiTokenType = {
  input: 'input' satisfies typeof GEN_AI_TOKEN_TYPE_VALUE_INPUT,
  output: 'output' satisfies typeof GEN_AI_TOKEN_TYPE_VALUE_OUTPUT,
} as const;
