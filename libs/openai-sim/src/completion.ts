import { parseLogprobs, parseResponseFormat, parseTools, positiveInt } from './chat-params.js';
import { type ApiError, invalidRequest, isApiError, modelNotFound } from './errors.js';
import { tokenLogprobs, type TokenLogprob } from './logprobs.js';
import { mediaTokens } from './media.js';
import { MAX_REPLY_TOKENS, type Reply, replyTo } from './reply.js';
import { contentText, countPromptTokens, countText } from './tokens.js';
import { isRecord } from './util.js';

/** Everything needed to answer a validated chat request. */
export interface ChatPlan extends Reply {
  model: string;
  stream: boolean;
  includeUsage: boolean;
  promptTokens: number;
  /** The part of `promptTokens` that is input audio. */
  audioTokens: number;
  /** With `logprobs: true`, how many `top_logprobs` each token lists (0..20); null without. */
  logprobs: number | null;
  /**
   * Every choice when `n` > 1; `choices[0]` is the plan's own reply, and the
   * plan's `completionTokens` is then the sum over all choices.
   */
  choices?: Reply[];
}

/** Usage object as OpenAI returns it. */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number; audio_tokens: number };
  completion_tokens_details: {
    reasoning_tokens: number;
    audio_tokens: number;
    accepted_prediction_tokens: number;
    rejected_prediction_tokens: number;
  };
}

export const SYSTEM_FINGERPRINT = 'fp_sluice_sim';
/**
 * OpenAI's context window for the gpt-4o family, a sensible `contextWindow`.
 * Not the default: unconfigured, the simulator keeps answering any prompt
 * (as it did before windows existed), since tests send larger ones.
 */
export const GPT_4O_CONTEXT_WINDOW = 128_000;
/** OpenAI's upper bound for `n`. */
const MAX_CHOICES = 128;
const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool', 'function']);

/** Validates an OpenAI chat request body and plans its deterministic answer. */
export function planChat(
  body: unknown,
  models: ReadonlySet<string>,
  contextWindow: (model: string) => number = () => Number.POSITIVE_INFINITY,
): ChatPlan | ApiError {
  if (!isRecord(body)) return invalidRequest('The request body must be a JSON object.');
  const { model, messages } = body;
  if (model === undefined || model === null || model === '') {
    return invalidRequest('you must provide a model parameter');
  }
  if (typeof model !== 'string') {
    return invalidRequest("Invalid type for 'model': expected a string.", 'model', 'invalid_type');
  }
  if (messages === undefined || messages === null) {
    return invalidRequest("Missing required parameter: 'messages'.", 'messages', 'missing_required_parameter');
  }
  if (!Array.isArray(messages)) {
    return invalidRequest("Invalid type for 'messages': expected an array of objects.", 'messages', 'invalid_type');
  }
  if (messages.length === 0) {
    return invalidRequest(
      "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
      'messages',
      'empty_array',
    );
  }
  for (let i = 0; i < messages.length; i++) {
    const m: unknown = messages[i];
    if (!isRecord(m)) {
      return invalidRequest(`Invalid type for 'messages[${i}]': expected an object.`, `messages[${i}]`, 'invalid_type');
    }
    if (typeof m.role !== 'string' || !ROLES.has(m.role)) {
      return invalidRequest(`Invalid value for 'messages[${i}].role': expected one of ${[...ROLES].join(', ')}.`, `messages[${i}].role`, 'invalid_value');
    }
    const c = m.content;
    if (c !== undefined && c !== null && typeof c !== 'string' && !Array.isArray(c)) {
      return invalidRequest(
        `Invalid type for 'messages[${i}].content': expected a string or an array of content parts.`,
        `messages[${i}].content`,
        'invalid_type',
      );
    }
  }

  const maxCompletionTokens = positiveInt(body, 'max_completion_tokens');
  if (isApiError(maxCompletionTokens)) return maxCompletionTokens;
  const legacyMaxTokens = positiveInt(body, 'max_tokens');
  if (isApiError(legacyMaxTokens)) return legacyMaxTokens;
  // max_tokens is the deprecated spelling; the newer field wins when both are sent.
  const maxTokens = maxCompletionTokens ?? legacyMaxTokens ?? null;

  const n = positiveInt(body, 'n') ?? 1;
  if (isApiError(n)) return n;
  if (n > MAX_CHOICES) {
    return invalidRequest(
      `Invalid 'n': integer above maximum value. Expected a value <= ${MAX_CHOICES}, but got ${n} instead.`,
      'n',
      'integer_above_max_value',
    );
  }
  const tools = parseTools(body);
  if (isApiError(tools)) return tools;
  const format = parseResponseFormat(body);
  if (isApiError(format)) return format;
  const t = body.temperature;
  if (t !== undefined && t !== null && (typeof t !== 'number' || !(t >= 0 && t <= 2))) {
    return invalidRequest("Invalid 'temperature': expected a number between 0 and 2.", 'temperature', 'invalid_value');
  }
  const stream = body.stream;
  if (stream !== undefined && stream !== null && typeof stream !== 'boolean') {
    return invalidRequest("Invalid type for 'stream': expected a boolean.", 'stream', 'invalid_type');
  }
  const so = body.stream_options;
  let includeUsage = false;
  if (so !== undefined && so !== null) {
    if (stream !== true) {
      return invalidRequest("The 'stream_options' parameter is only allowed when 'stream' is enabled.", 'stream_options');
    }
    if (!isRecord(so)) {
      return invalidRequest("Invalid type for 'stream_options': expected an object.", 'stream_options', 'invalid_type');
    }
    includeUsage = so.include_usage === true;
  }

  const logprobs = parseLogprobs(body);
  if (isApiError(logprobs)) return logprobs;

  if (!models.has(model)) return modelNotFound(model);

  const msgs = messages as { role: string; content?: unknown }[];
  const media = mediaTokens(msgs);
  if (isApiError(media)) return media;
  const promptTokens = countPromptTokens(msgs) + media.image + media.audio + (tools === undefined ? 0 : countText(JSON.stringify(body.tools)));
  const window = contextWindow(model);
  if (promptTokens + (maxTokens ?? 0) > window) return contextLengthExceeded(window, promptTokens, maxTokens);
  // Like OpenAI, a reply never runs past the context window.
  const room = window - promptTokens;
  const cap = maxTokens ?? (room < MAX_REPLY_TOKENS ? room : null);

  const text = lastUserText(msgs);
  const tool = tools !== undefined && msgs[msgs.length - 1]?.role === 'user' ? tools.chosen : undefined;
  const choices: Reply[] = [];
  for (let i = 0; i < n; i++) choices.push(replyTo(text, i, cap, tool, format));
  const first = choices[0] as Reply;
  const base = { model, stream: stream === true, includeUsage, promptTokens, audioTokens: media.audio, logprobs };
  if (n === 1) return { ...first, ...base };
  return { ...first, ...base, completionTokens: choices.reduce((t, c) => t + c.completionTokens, 0), choices };
}

/** The choices of a plan, in index order. */
export function choicesOf(plan: ChatPlan): readonly Reply[] {
  return plan.choices ?? [plan];
}

/** OpenAI's 400 for a prompt (plus max tokens) over the model's context window; `param` names the prompt field. */
export function contextLengthExceeded(window: number, promptTokens: number, maxTokens: number | null, param = 'messages'): ApiError {
  const message =
    maxTokens === null
      ? `This model's maximum context length is ${window} tokens. However, your messages resulted in ${promptTokens} tokens. Please reduce the length of the messages.`
      : `This model's maximum context length is ${window} tokens. However, you requested ${promptTokens + maxTokens} tokens (${promptTokens} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`;
  return invalidRequest(message, param, 'context_length_exceeded');
}

/** A choice's `logprobs`: per token of the content, or of the refusal; a tool call's are null. */
function logprobsBlock(c: Reply, top: number): { content: TokenLogprob[] | null; refusal: TokenLogprob[] | null } {
  const entries = c.toolCall === undefined ? tokenLogprobs(c.content, top).map((p) => p.entry) : null;
  return c.refusal ? { content: null, refusal: entries } : { content: entries, refusal: null };
}

/** Usage block for a plan. */
export function usageOf(plan: ChatPlan): Usage {
  return {
    prompt_tokens: plan.promptTokens,
    completion_tokens: plan.completionTokens,
    total_tokens: plan.promptTokens + plan.completionTokens,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: plan.audioTokens },
    completion_tokens_details: {
      reasoning_tokens: 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

/** The `chat.completion` response body. */
export function completionBody(plan: ChatPlan, id: string, created: number): object {
  return {
    id,
    object: 'chat.completion',
    created,
    model: plan.model,
    choices: choicesOf(plan).map((c, index) => ({
      index,
      message: c.refusal
        ? { role: 'assistant', content: null, refusal: c.content, annotations: [] }
        : c.toolCall === undefined
          ? { role: 'assistant', content: c.content, refusal: null, annotations: [] }
          : {
              role: 'assistant',
              content: null,
              tool_calls: [{ id: c.toolCall.id, type: 'function', function: { name: c.toolCall.name, arguments: c.content } }],
              refusal: null,
              annotations: [],
            },
      logprobs: plan.logprobs === null ? null : logprobsBlock(c, plan.logprobs),
      finish_reason: c.finishReason,
    })),
    usage: usageOf(plan),
    service_tier: 'default',
    system_fingerprint: SYSTEM_FINGERPRINT,
  };
}

/** The text of the last `user` message (of the last message when there is none). */
export function lastUserText(messages: readonly { role: string; content?: unknown }[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (m !== undefined && m.role === 'user') return contentText(m.content);
  }
  return contentText(messages[messages.length - 1]?.content);
}
