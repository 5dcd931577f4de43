import type { Endpoint } from './request.js';
import type { Usage } from './reply.js';

// The OpenAI objects Sluice passes through are opaque JSON; these helpers read and build the few
// parts of them Sluice must: usage, the chat completion a stream adds up to, and the stream a
// whole answer replays as. Shapes follow OpenAI's API reference (Chat Completions, Responses).

type Json = Record<string, unknown>;

/** OpenAI's completion id for a Sluice request id. */
export const completionId = (requestId: string) => `chatcmpl-${requestId}`;

/** Whether a value parsed from JSON is an object (not null, not an array): the shape OpenAI's bodies and their parts have. */
export function isJsonObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
const int = (v: unknown): number => (typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : 0);

/**
 * The billed usage of an answer body in chat's names: `usage.prompt_tokens`/`completion_tokens`
 * (chat, embeddings), `usage.input_tokens`/`output_tokens` (Responses). Undefined when the body
 * carries none.
 */
export function usageOf(endpoint: Endpoint, body: unknown): Usage | undefined {
  const u = isJsonObject(body) ? body.usage : undefined;
  if (!isJsonObject(u)) return undefined;
  if (endpoint === 'responses') {
    const prompt = int(u.input_tokens);
    const completion = int(u.output_tokens);
    return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  }
  const prompt = int(u.prompt_tokens);
  const completion = int(u.completion_tokens);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: int(u.total_tokens) || prompt + completion };
}

interface ToolCallDraft {
  index: number;
  id?: string;
  type?: string;
  function: { name: string; arguments: string };
}
interface ChoiceDraft {
  index: number;
  role: string;
  content: string | null;
  refusal: string | null;
  toolCalls: ToolCallDraft[];
  logprobs: { content: unknown[] | null; refusal: unknown[] | null } | null;
  finishReason: string | null;
}

/**
 * Adds up `chat.completion.chunk` objects into the `chat.completion` they stream, as OpenAI's
 * SDK stream helper does: content and refusal deltas concatenated, tool calls merged by their
 * `index` (id, type and name from the first delta that has them, arguments concatenated),
 * logprobs appended, per choice by its `index`. Top-level fields (`model`, `system_fingerprint`,
 * `service_tier`, `usage`) keep the last value a chunk sent.
 *
 * @example
 * const a = new ChatAssembler(); for (const c of chunks) a.add(c); a.completion('r1', 1700000000)
 */
export class ChatAssembler {
  private readonly choices = new Map<number, ChoiceDraft>();
  private readonly top: Json = {};
  /** Characters of content, refusal and tool arguments received: what was streamed so far. */
  text = '';

  add(chunk: unknown): void {
    if (!isJsonObject(chunk)) return;
    for (const k of ['model', 'system_fingerprint', 'service_tier', 'usage'] as const) if (chunk[k] !== undefined && chunk[k] !== null) this.top[k] = chunk[k];
    if (!Array.isArray(chunk.choices)) return;
    for (const c of chunk.choices) {
      if (!isJsonObject(c)) continue;
      const index = int(c.index);
      let d = this.choices.get(index);
      if (!d) this.choices.set(index, (d = { index, role: 'assistant', content: null, refusal: null, toolCalls: [], logprobs: null, finishReason: null }));
      const delta = isJsonObject(c.delta) ? c.delta : {};
      if (typeof delta.role === 'string') d.role = delta.role;
      if (typeof delta.content === 'string') {
        d.content = (d.content ?? '') + delta.content;
        this.text += delta.content;
      }
      if (typeof delta.refusal === 'string') {
        d.refusal = (d.refusal ?? '') + delta.refusal;
        this.text += delta.refusal;
      }
      if (Array.isArray(delta.tool_calls)) for (const t of delta.tool_calls) this.addToolCall(d, t);
      if (isJsonObject(c.logprobs)) {
        d.logprobs ??= { content: null, refusal: null };
        for (const k of ['content', 'refusal'] as const) {
          const more = c.logprobs[k];
          if (Array.isArray(more)) d.logprobs[k] = [...(d.logprobs[k] ?? []), ...(more as unknown[])];
        }
      }
      if (typeof c.finish_reason === 'string') d.finishReason = c.finish_reason;
    }
  }

  private addToolCall(d: ChoiceDraft, t: unknown): void {
    if (!isJsonObject(t)) return;
    const index = int(t.index);
    let call = d.toolCalls.find((c) => c.index === index);
    if (!call) d.toolCalls.push((call = { index, function: { name: '', arguments: '' } }));
    if (typeof t.id === 'string') call.id = t.id;
    if (typeof t.type === 'string') call.type = t.type;
    const f = isJsonObject(t.function) ? t.function : {};
    if (typeof f.name === 'string') call.function.name += f.name;
    if (typeof f.arguments === 'string') {
      call.function.arguments += f.arguments;
      this.text += f.arguments;
    }
  }

  /** The usage the stream's last usage chunk carried, if any. */
  get usage(): unknown {
    return this.top.usage;
  }

  /** The whole `chat.completion` (`id` `chatcmpl-<requestId>`, `created` in Unix seconds). */
  completion(requestId: string, created: number): Json {
    const choices = [...this.choices.values()]
      .sort((a, b) => a.index - b.index)
      .map((d) => ({
        index: d.index,
        message: {
          role: d.role,
          content: d.content,
          refusal: d.refusal,
          ...(d.toolCalls.length
            ? {
                tool_calls: d.toolCalls
                  .sort((a, b) => a.index - b.index)
                  .map((t) => ({ id: t.id ?? `call_${t.index}`, type: t.type ?? 'function', function: t.function })),
              }
            : {}),
        },
        logprobs: d.logprobs,
        finish_reason: d.finishReason ?? 'stop',
      }));
    return {
      id: completionId(requestId),
      object: 'chat.completion',
      created,
      model: this.top.model ?? null,
      choices,
      usage: this.top.usage ?? null,
      system_fingerprint: this.top.system_fingerprint ?? null,
      ...(this.top.service_tier !== undefined ? { service_tier: this.top.service_tier } : {}),
    };
  }
}

/**
 * The `chat.completion.chunk` objects that stream a whole `chat.completion` again (a cached
 * answer to a streaming request): per choice a role chunk with the content (or refusal), one
 * chunk per tool call (OpenAI's indexed deltas), a finish chunk; then a usage chunk when
 * `includeUsage`. With `includeUsage` every other chunk has `usage: null`, as OpenAI sends.
 */
export function chatChunksOf(completion: unknown, requestId: string, includeUsage: boolean): Json[] {
  const c = isJsonObject(completion) ? completion : {};
  const base = {
    id: completionId(requestId),
    object: 'chat.completion.chunk',
    created: c.created ?? 0,
    model: c.model ?? null,
    system_fingerprint: c.system_fingerprint ?? null,
    ...(c.service_tier !== undefined ? { service_tier: c.service_tier } : {}),
  };
  const chunk = (choices: unknown[]) => ({ ...base, choices, ...(includeUsage ? { usage: null } : {}) });
  const out: Json[] = [];
  for (const choice of Array.isArray(c.choices) ? c.choices : []) {
    if (!isJsonObject(choice)) continue;
    const index = int(choice.index);
    const m = isJsonObject(choice.message) ? choice.message : {};
    const first: Json = { role: 'assistant' };
    if (typeof m.content === 'string') first.content = m.content;
    if (typeof m.refusal === 'string') first.refusal = m.refusal;
    out.push(chunk([{ index, delta: first, logprobs: choice.logprobs ?? null, finish_reason: null }]));
    const calls = Array.isArray(m.tool_calls) ? m.tool_calls : [];
    calls.forEach((t, i) => {
      if (isJsonObject(t)) out.push(chunk([{ index, delta: { tool_calls: [{ index: i, ...t }] }, logprobs: null, finish_reason: null }]));
    });
    out.push(chunk([{ index, delta: {}, logprobs: null, finish_reason: choice.finish_reason ?? 'stop' }]));
  }
  if (includeUsage) out.push({ ...base, choices: [], usage: c.usage ?? null });
  return out;
}

/**
 * The Responses API events that stream a whole `response` again (a cached answer): created, in
 * progress, each output item added and done (a message's text as one delta), completed. Each
 * has its `type` (the SSE event name) and a `sequence_number`.
 */
export function responseEventsOf(response: unknown): Json[] {
  const r = isJsonObject(response) ? response : {};
  const output = Array.isArray(r.output) ? r.output : [];
  const events: Json[] = [];
  const push = (e: Json) => events.push({ ...e, sequence_number: events.length });
  const pending = { ...r, status: 'in_progress', output: [], usage: null };
  push({ type: 'response.created', response: pending });
  push({ type: 'response.in_progress', response: pending });
  output.forEach((item, output_index) => {
    if (!isJsonObject(item)) return;
    const id = item.id;
    if (item.type === 'message') {
      push({ type: 'response.output_item.added', output_index, item: { ...item, status: 'in_progress', content: [] } });
      const parts = Array.isArray(item.content) ? item.content : [];
      parts.forEach((part, content_index) => {
        if (!isJsonObject(part)) return;
        const at = { item_id: id, output_index, content_index };
        const text = typeof part.text === 'string' ? part.text : '';
        push({ type: 'response.content_part.added', ...at, part: { ...part, text: '' } });
        if (part.type === 'output_text') {
          push({ type: 'response.output_text.delta', ...at, delta: text, logprobs: [] });
          push({ type: 'response.output_text.done', ...at, text, logprobs: [] });
        }
        push({ type: 'response.content_part.done', ...at, part });
      });
    } else {
      push({ type: 'response.output_item.added', output_index, item: item.type === 'function_call' ? { ...item, arguments: '' } : item });
      if (item.type === 'function_call' && typeof item.arguments === 'string') {
        push({ type: 'response.function_call_arguments.delta', item_id: id, output_index, delta: item.arguments });
        push({ type: 'response.function_call_arguments.done', item_id: id, output_index, arguments: item.arguments });
      }
    }
    push({ type: 'response.output_item.done', output_index, item });
  });
  push({ type: 'response.completed', response: r });
  return events;
}

/**
 * Whether an answer body is whole, so it may be served again from the cache: every chat choice
 * ended by `stop` or `tool_calls` (not `length`, `content_filter`), a Response `completed`, any
 * embeddings list.
 */
export function isWholeAnswer(endpoint: Endpoint, body: unknown): boolean {
  if (!isJsonObject(body)) return false;
  if (endpoint === 'embeddings') return Array.isArray(body.data);
  if (endpoint === 'responses') return body.status === 'completed';
  const choices = Array.isArray(body.choices) ? body.choices : [];
  return choices.length > 0 && choices.every((c) => isJsonObject(c) && (c.finish_reason === 'stop' || c.finish_reason === 'tool_calls'));
}

/**
 * The answer body a client of request `requestId` receives: a chat completion gets that
 * request's id (`chatcmpl-<requestId>`) and `created`; other objects keep the upstream's ids (a
 * Response's id is the upstream's handle for `previous_response_id`).
 */
export function bodyFor(endpoint: Endpoint, body: unknown, requestId: string, created: number): unknown {
  if (endpoint !== 'chat.completions' || !isJsonObject(body)) return body;
  return { ...body, id: completionId(requestId), created };
}

/**
 * The streamed objects that replay a whole answer (a cached or made-up one) to a streaming
 * client: chat chunks (with the usage chunk unless `includeUsage` is false: a stage that does not
 * know whether the client asked sends it, and ingress drops it for a client that did not),
 * Responses events; embeddings do not stream.
 */
export function replayChunks(endpoint: Endpoint, body: unknown, requestId: string, includeUsage = true): unknown[] {
  if (endpoint === 'chat.completions') return chatChunksOf(body, requestId, includeUsage);
  if (endpoint === 'responses') return responseEventsOf(body);
  return [];
}

/** Upstream statuses another try may fix: timeouts, lock conflicts, rate limits and server errors. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 409 || status === 429 || status >= 500;
}

/**
 * Upstream statuses that are the deployment's fault, not the request's: its key is wrong or lacks
 * access (401, 403). Passing them on would tell the client its own key is bad.
 */
export function isDeploymentFault(status: number): boolean {
  return status === 401 || status === 403;
}

/**
 * An upstream status that says the request itself was wrong (400 `context_length_exceeded`, 404,
 * 422...): a 4xx neither retryable nor the deployment's fault. The upstream is healthy: the
 * invoker passes the error to the client without retrying, and neither its circuit nor the
 * degrader counts it as a failure.
 */
export function isRequestRefusal(status: number | undefined): boolean {
  return status !== undefined && status >= 400 && status < 500 && !isRetryableStatus(status) && !isDeploymentFault(status);
}

/**
 * A duration (ms, rounded up) as OpenAI writes it in its x-ratelimit-reset-* headers and rate-limit
 * messages (Go's time.Duration style): "20ms", "1s", "8.64s", "6m0s", "1h2m3s"; "0s" for none.
 * Used by ingress's headers and by the simulator, which speaks as OpenAI does.
 */
export function formatDuration(ms: number): string {
  if (!(ms > 0)) return '0s';
  const whole = Math.ceil(ms);
  if (whole < 1000) return `${whole}ms`;
  const hours = Math.floor(whole / 3_600_000);
  const minutes = Math.floor((whole % 3_600_000) / 60_000);
  const secMs = whole % 60_000;
  // Trailing zeros are dropped, as in "1.5s" rather than "1.500s".
  const seconds = secMs % 1000 === 0 ? String(secMs / 1000) : (secMs / 1000).toFixed(3).replace(/0+$/, '');
  if (hours > 0) return `${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${minutes}m${seconds}s`;
  return `${seconds}s`;
}

/**
 * Reads a duration as OpenAI writes it in x-ratelimit-reset-* (the inverse of `formatDuration`,
 * and Go's units besides: "20ms", "1s", "8.64s", "6m0s", "1h2m3s", "500us"), in ms. Undefined for
 * anything else (an empty, negative or unitless value), so a header a deployment words its own way
 * is ignored rather than misread.
 */
export function parseDuration(text: string): number | undefined {
  const s = text.trim();
  if (!/^(\d+(\.\d+)?(h|m|s|ms|us|µs|ns))+$/.test(s)) return undefined;
  const unitMs: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, µs: 0.001, ns: 0.000001 };
  let ms = 0;
  for (const [, n, , unit] of s.matchAll(/(\d+(\.\d+)?)(h|ms|m|s|us|µs|ns)/g)) ms += Number(n) * unitMs[unit!]!;
  return ms;
}
