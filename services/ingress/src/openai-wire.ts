import { openAiErrorBody, type ChatResult, type SluiceConfig, type Tenant, type Usage } from '@sluice/contracts';
import { modelsFor } from './tenants.js';

/** OpenAI's completion id for a Sluice request id. */
const completionId = (requestId: string) => `chatcmpl-${requestId}`;

/** A whole answer as OpenAI's `chat.completion`. */
export function toCompletion(result: ChatResult) {
  return {
    id: completionId(result.requestId),
    object: 'chat.completion' as const,
    created: result.created,
    model: result.model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant' as const, content: result.message.content, refusal: null },
        logprobs: null,
        finish_reason: result.finishReason,
      },
    ],
    usage: result.usage,
    system_fingerprint: null,
  };
}

/** What every chunk of one streamed answer shares. */
export interface StreamShape {
  requestId: string;
  /** Unix seconds, the same on every chunk as OpenAI does. */
  created: number;
  /** With `include_usage`, OpenAI sends `usage: null` on every chunk but the last. */
  includeUsage: boolean;
}

/** One `chat.completion.chunk`. */
export function toChunk(shape: StreamShape, model: string, delta: { role?: 'assistant'; content?: string }, finishReason: string | null = null) {
  return {
    id: completionId(shape.requestId),
    object: 'chat.completion.chunk' as const,
    created: shape.created,
    model,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    ...(shape.includeUsage ? { usage: null } : {}),
  };
}

/** The last chunk when `include_usage` is set: no choices, the usage. */
export function toUsageChunk(shape: StreamShape, model: string, usage: Usage) {
  return { id: completionId(shape.requestId), object: 'chat.completion.chunk' as const, created: shape.created, model, choices: [], usage };
}

/** `GET /v1/models` for a tenant. */
export function toModelList(tenant: Tenant, config: SluiceConfig) {
  return {
    object: 'list' as const,
    data: modelsFor(tenant, config).map((id) => ({ id, object: 'model' as const, created: 0, owned_by: 'sluice' })),
  };
}

/** Retry-After (whole seconds, rounded up) and OpenAI's retry-after-ms, when a retry time is known. */
export function retryHeaders(retryAfterMs: number | undefined): Record<string, string> {
  if (retryAfterMs === undefined) return {};
  const ms = Math.max(0, Math.ceil(retryAfterMs));
  return { 'retry-after': String(Math.ceil(ms / 1000)), 'retry-after-ms': String(ms) };
}

export { openAiErrorBody };
