import { type ApiError, invalidRequest, isApiError, modelNotFound } from './errors.js';
import { contentText, countPromptTokens, countText } from './tokens.js';
import { fnv1a, isRecord } from './util.js';
import { VOCAB } from './vocab.js';

/** A slice of the reply whose token count is known; streamed chunks are made of these. */
interface Piece {
  text: string;
  tokens: number;
}

/** The deterministic reply to one prompt. */
export interface Reply {
  content: string;
  pieces: Piece[];
  completionTokens: number;
  finishReason: 'stop' | 'length';
}

/** Everything needed to answer a validated chat request. */
export interface ChatPlan extends Reply {
  model: string;
  stream: boolean;
  includeUsage: boolean;
  promptTokens: number;
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

export const MIN_REPLY_TOKENS = 8;
export const MAX_REPLY_TOKENS = 64;
export const SYSTEM_FINGERPRINT = 'fp_sluice_sim';

const ECHO = 'Echo:';
const ECHO_TOKENS = countText(ECHO);
const MAX_ECHO_WORDS = 8;
const MAX_ECHO_WORD_CHARS = 24;
const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool', 'function']);

/** Natural reply length for a prompt, in [MIN_REPLY_TOKENS, MAX_REPLY_TOKENS]. */
export function targetTokens(lastUserText: string): number {
  return MIN_REPLY_TOKENS + (fnv1a(lastUserText) % (MAX_REPLY_TOKENS - MIN_REPLY_TOKENS + 1));
}

/**
 * The reply to `lastUserText`: "Echo:" plus its first few ASCII words, padded
 * with one-token filler words, cut to `maxTokens`. Only ASCII-letter words are
 * echoed because words separated by single spaces are separate pre-tokens for
 * the o200k tokenizer, so the sum of per-piece counts equals the count of the
 * joined text.
 */
export function buildReply(lastUserText: string, maxTokens: number | null): Reply {
  const hash = fnv1a(lastUserText);
  const target = targetTokens(lastUserText);
  const budget = maxTokens === null ? target : Math.min(target, maxTokens);
  const pieces: Piece[] = [];
  let used = 0;

  if (ECHO_TOKENS <= budget) {
    pieces.push({ text: ECHO, tokens: ECHO_TOKENS });
    used = ECHO_TOKENS;
    const words = /[A-Za-z]+/g;
    for (let n = 0; n < MAX_ECHO_WORDS; n++) {
      const m = words.exec(lastUserText);
      if (m === null) break;
      const text = ' ' + m[0].slice(0, MAX_ECHO_WORD_CHARS);
      const tokens = countText(text);
      if (used + tokens > budget) break;
      pieces.push({ text, tokens });
      used += tokens;
    }
  }

  let state = hash | 1;
  while (used < budget) {
    // xorshift32: a cheap deterministic walk through the filler vocabulary.
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    const word = VOCAB[(state >>> 0) % VOCAB.length] as string;
    pieces.push({ text: pieces.length === 0 ? word : ' ' + word, tokens: 1 });
    used += 1;
  }

  let content = '';
  for (const p of pieces) content += p.text;
  return {
    content,
    pieces,
    completionTokens: used,
    finishReason: maxTokens !== null && target > maxTokens ? 'length' : 'stop',
  };
}

/** Validates an OpenAI chat request body and plans its deterministic answer. */
export function planChat(body: unknown, models: ReadonlySet<string>): ChatPlan | ApiError {
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

  const n = body.n;
  if (n !== undefined && n !== null && n !== 1) {
    return invalidRequest("Invalid value for 'n': the simulator only supports n=1.", 'n', 'invalid_value');
  }
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

  if (!models.has(model)) return modelNotFound(model);

  const msgs = messages as { role: string; content?: unknown }[];
  const reply = buildReply(lastUserText(msgs), maxTokens);
  return { ...reply, model, stream: stream === true, includeUsage, promptTokens: countPromptTokens(msgs) };
}

/** Usage block for a plan. */
export function usageOf(plan: ChatPlan): Usage {
  return {
    prompt_tokens: plan.promptTokens,
    completion_tokens: plan.completionTokens,
    total_tokens: plan.promptTokens + plan.completionTokens,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
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
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: plan.content, refusal: null, annotations: [] },
        logprobs: null,
        finish_reason: plan.finishReason,
      },
    ],
    usage: usageOf(plan),
    service_tier: 'default',
    system_fingerprint: SYSTEM_FINGERPRINT,
  };
}

function lastUserText(messages: readonly { role: string; content?: unknown }[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (m !== undefined && m.role === 'user') return contentText(m.content);
  }
  return contentText(messages[messages.length - 1]?.content);
}

/** Reads an optional integer ≥ 1; undefined when absent, an ApiError when invalid. */
function positiveInt(body: Record<string, unknown>, key: string): number | ApiError | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    return invalidRequest(`Invalid type for '${key}': expected an integer.`, key, 'invalid_type');
  }
  if (v < 1) {
    return invalidRequest(`Invalid '${key}': integer below minimum value. Expected a value >= 1, but got ${v} instead.`, key, 'integer_below_min_value');
  }
  return v;
}
