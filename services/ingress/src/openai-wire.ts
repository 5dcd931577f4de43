import {
  formatDuration,
  isJsonObject,
  openAiErrorBody,
  type ChatErrorReply,
  type Endpoint,
  type RateLimitState,
  type SluiceConfig,
  type Tenant,
  type VirtualKey,
} from '@sluice/contracts';
import { modelsFor } from './tenants.js';

// What ingress writes on the HTTP wire. Answers are the upstream's OpenAI objects, passed whole;
// this file holds the little that is Sluice's own: the SSE framing per endpoint, the usage a
// client did not ask for, models, and the headers.

/**
 * A streamed chat chunk as the client asked for it. The invoker always asks the upstream for
 * usage (to bill); without `stream_options.include_usage` the client gets neither the final
 * usage-only chunk (undefined: not sent) nor a `usage` key on the others, as OpenAI would send.
 */
export function chatChunkForClient(chunk: unknown, includeUsage: boolean): unknown {
  if (includeUsage || !isJsonObject(chunk) || !('usage' in chunk)) return chunk;
  if (Array.isArray(chunk.choices) && chunk.choices.length === 0) return undefined;
  const { usage: _usage, ...rest } = chunk;
  return rest;
}

/** Whether a chat chunk is the usage chunk that ends a stream (no choices, a usage). */
export function isUsageChunk(chunk: unknown): boolean {
  return isJsonObject(chunk) && Array.isArray(chunk.choices) && chunk.choices.length === 0 && isJsonObject(chunk.usage);
}

/**
 * One server-sent event: chat chunks as `data: <json>`; Responses events as
 * `event: <type>` then `data: <json>`, as OpenAI streams them.
 */
export function sseEvent(endpoint: Endpoint, chunk: unknown): string {
  const data = `data: ${JSON.stringify(chunk)}\n\n`;
  if (endpoint !== 'responses') return data;
  const type = isJsonObject(chunk) && typeof chunk.type === 'string' ? chunk.type : 'message';
  return `event: ${type}\n${data}`;
}

/** What ends a stream after its last event: chat's `data: [DONE]`; the Responses API sends none. */
export function streamEnd(endpoint: Endpoint): string {
  return endpoint === 'chat.completions' ? 'data: [DONE]\n\n' : '';
}

/**
 * The SSE event for an error after the stream started. The SDKs throw on a `data` with an
 * `error` member; a Responses stream also gets OpenAI's `error` event fields (`type`, `code`,
 * `message`, `param`) beside it, for clients that read the events themselves.
 */
export function errorEvent(endpoint: Endpoint, error: ChatErrorReply['error']): string {
  const body = openAiErrorBody(error.code, error.message, error.type, error.param);
  if (endpoint !== 'responses') return sseEvent(endpoint, body);
  return sseEvent(endpoint, { type: 'error', code: error.code, message: error.message, param: error.param ?? null, ...body });
}

/** OpenAI's model object. */
export function toModel(id: string) {
  return { id, object: 'model' as const, created: 0, owned_by: 'sluice' };
}

/** `GET /v1/models` for a tenant, or for one of its virtual keys. */
export function toModelList(tenant: Tenant, config: SluiceConfig, key?: VirtualKey) {
  return { object: 'list' as const, data: modelsFor(tenant, config, key).map(toModel) };
}

/** Retry-After (whole seconds, rounded up) and OpenAI's retry-after-ms, when a retry time is known. */
export function retryHeaders(retryAfterMs: number | undefined): Record<string, string> {
  if (retryAfterMs === undefined) return {};
  const ms = Math.max(0, Math.ceil(retryAfterMs));
  return { 'retry-after': String(Math.ceil(ms / 1000)), 'retry-after-ms': String(ms) };
}

/**
 * OpenAI's rate-limit headers from the tightest Sluice limits that applied (on a 429, the bucket
 * that refused): `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, the reset as a
 * duration (`formatDuration`).
 */
export function rateLimitHeaders(rateLimit: Partial<RateLimitState> | undefined): Record<string, string> {
  if (!rateLimit) return {};
  const out: Record<string, string> = {};
  for (const kind of ['requests', 'tokens'] as const) {
    // a throttle knows only the bucket that refused it
    const l = rateLimit[kind];
    if (!l) continue;
    out[`x-ratelimit-limit-${kind}`] = String(l.limit);
    out[`x-ratelimit-remaining-${kind}`] = String(Math.max(0, l.remaining));
    out[`x-ratelimit-reset-${kind}`] = formatDuration(l.resetMs);
  }
  return out;
}

export { openAiErrorBody };
