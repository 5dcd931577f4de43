import { createHash } from 'node:crypto';
import { type ApiError, invalidRequest, isApiError, modelNotFound } from './errors.js';
import { mediaTokens } from './media.js';
import { MAX_TOP_LOGPROBS, tokenLogprobs, type TokenLogprob } from './logprobs.js';
import { valueForSchema } from './schema.js';
import { contentText, countPromptTokens, countText } from './tokens.js';
import { fnv1a, isRecord } from './util.js';
import { VOCAB } from './vocab.js';

/** A slice of the reply whose token count is known; streamed chunks are made of these. */
interface Piece {
  text: string;
  tokens: number;
}

/** A function tool call as OpenAI returns it (`arguments` is the reply's `content`). */
interface ToolCall {
  id: string;
  name: string;
}

/** The deterministic reply to one prompt (one choice). */
export interface Reply {
  /** The text; for a tool call, the arguments' JSON text (the message's `content` is then null). */
  content: string;
  pieces: Piece[];
  completionTokens: number;
  finishReason: 'stop' | 'length' | 'tool_calls';
  /** Set when the reply is a tool call. */
  toolCall?: ToolCall;
  /** Set when the reply is a refusal: `content` is then the refusal text (the message's `content` is null). */
  refusal?: true;
}

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

export const MIN_REPLY_TOKENS = 8;
export const MAX_REPLY_TOKENS = 64;
export const SYSTEM_FINGERPRINT = 'fp_sluice_sim';
/** A last user message containing this text is refused (`content: null`, `refusal` set), to test refusal handling. */
const REFUSE_MARKER = 'SIM_REFUSE';
export const REFUSAL_TEXT = "I'm sorry, but I can't help with that request.";

const ECHO = 'Echo:';
const ECHO_TOKENS = countText(ECHO);
const MAX_ECHO_WORDS = 8;
const MAX_ECHO_WORD_CHARS = 24;
/**
 * OpenAI's context window for the gpt-4o family, a sensible `contextWindow`.
 * Not the default: unconfigured, the simulator keeps answering any prompt
 * (as it did before windows existed), since tests send larger ones.
 */
export const GPT_4O_CONTEXT_WINDOW = 128_000;
/** OpenAI's upper bound for `n`. */
const MAX_CHOICES = 128;
/** Argument / JSON text is streamed in fragments of this many characters. */
const FRAGMENT_CHARS = 8;
const FALLBACK_WORDS = ['sim'];
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

/** A function the model may call; `parameters` is its JSON schema. */
export interface Tool {
  name: string;
  parameters: unknown;
}

/**
 * The reply of one choice to `text` (the last user message): a refusal when
 * it holds {@link REFUSE_MARKER}, else a call of `tool` when one is due, else
 * JSON when `format` asks for it, else the echo reply.
 */
export function replyTo(text: string, choice: number, cap: number | null, tool: Tool | undefined, format: Format | undefined): Reply {
  if (text.includes(REFUSE_MARKER)) return { ...structuredReply(REFUSAL_TEXT, cap, 'stop'), refusal: true };
  if (tool !== undefined) return toolCallReply(tool, text, choice, cap);
  if (format !== undefined) return jsonReply(format, text, choice, cap);
  return buildReply(choice === 0 ? text : `${text}\n#${choice}`, cap);
}

/** `tools`, validated; `chosen` is undefined when tool_choice is "none". */
function parseTools(body: Record<string, unknown>): { chosen: Tool | undefined } | ApiError | undefined {
  const raw = body.tools;
  if (raw === undefined || raw === null) return undefined;
  if (!Array.isArray(raw)) return invalidRequest("Invalid type for 'tools': expected an array of objects.", 'tools', 'invalid_type');
  if (raw.length === 0) return undefined;
  const tools: Tool[] = [];
  for (let i = 0; i < raw.length; i++) {
    const t: unknown = raw[i];
    const fn = isRecord(t) ? t.function : undefined;
    if (!isRecord(t) || t.type !== 'function' || !isRecord(fn) || typeof fn.name !== 'string' || fn.name === '') {
      return invalidRequest(`Invalid value for 'tools[${i}]': expected {type: 'function', function: {name, parameters?}}.`, `tools[${i}]`, 'invalid_value');
    }
    tools.push({ name: fn.name, parameters: fn.parameters ?? { type: 'object', properties: {} } });
  }
  const choice = body.tool_choice;
  if (choice === 'none') return { chosen: undefined };
  if (choice === undefined || choice === null || choice === 'auto' || choice === 'required') return { chosen: tools[0] };
  const name = isRecord(choice) && choice.type === 'function' && isRecord(choice.function) ? choice.function.name : undefined;
  const named = tools.find((t) => t.name === name);
  if (named === undefined) {
    return invalidRequest(
      `Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or {type: 'function', function: {name}} naming one of 'tools'.`,
      'tool_choice',
      'invalid_value',
    );
  }
  return { chosen: named };
}

/** A structured-output format: any JSON object, or JSON valid against `schema`. */
export type Format = { kind: 'json_object' } | { kind: 'json_schema'; schema: unknown };

/** `response_format`; undefined for plain text. */
function parseResponseFormat(body: Record<string, unknown>): Format | ApiError | undefined {
  const rf = body.response_format;
  if (rf === undefined || rf === null) return undefined;
  if (!isRecord(rf)) return invalidRequest("Invalid type for 'response_format': expected an object.", 'response_format', 'invalid_type');
  if (rf.type === 'text') return undefined;
  if (rf.type === 'json_object') return { kind: 'json_object' };
  if (rf.type === 'json_schema') {
    const js = rf.json_schema;
    if (!isRecord(js) || typeof js.name !== 'string' || js.name === '') {
      return invalidRequest(
        "Missing required parameter: 'response_format.json_schema.name'.",
        'response_format.json_schema.name',
        'missing_required_parameter',
      );
    }
    return { kind: 'json_schema', schema: js.schema ?? { type: 'object', properties: {} } };
  }
  return invalidRequest(
    "Invalid value for 'response_format.type': expected one of 'text', 'json_object', 'json_schema'.",
    'response_format.type',
    'invalid_value',
  );
}

/** OpenAI's 400 for a prompt (plus max tokens) over the model's context window; `param` names the prompt field. */
export function contextLengthExceeded(window: number, promptTokens: number, maxTokens: number | null, param = 'messages'): ApiError {
  const message =
    maxTokens === null
      ? `This model's maximum context length is ${window} tokens. However, your messages resulted in ${promptTokens} tokens. Please reduce the length of the messages.`
      : `This model's maximum context length is ${window} tokens. However, you requested ${promptTokens + maxTokens} tokens (${promptTokens} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`;
  return invalidRequest(message, param, 'context_length_exceeded');
}

/** The prompt's first ASCII words, rotated by the choice index so that choices differ. */
function promptWords(text: string, choice: number): string[] {
  const words = (text.match(/[A-Za-z]+/g) ?? []).slice(0, MAX_ECHO_WORDS).map((w) => w.slice(0, MAX_ECHO_WORD_CHARS));
  const list = words.length > 0 ? words : FALLBACK_WORDS;
  const k = choice % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

function toolCallReply(tool: Tool, text: string, choice: number, cap: number | null): Reply {
  const args = JSON.stringify(valueForSchema(tool.parameters, promptWords(text, choice)) ?? {});
  const id = `call_${createHash('sha256').update(`${tool.name}\0${args}\0${text}\0${choice}`).digest('hex').slice(0, 24)}`;
  return { ...structuredReply(args, cap, 'tool_calls'), toolCall: { id, name: tool.name } };
}

function jsonReply(format: Format, text: string, choice: number, cap: number | null): Reply {
  const words = promptWords(text, choice);
  const value = format.kind === 'json_object' ? { answer: words.join(' ') } : valueForSchema(format.schema, words);
  return structuredReply(JSON.stringify(value), cap, 'stop');
}

/**
 * A reply whose text is JSON: `completionTokens` is the count of the whole
 * text; cut (to invalid JSON, as OpenAI does) with finish_reason 'length'
 * when it exceeds `cap`. Pieces are fixed-size fragments for streaming.
 */
function structuredReply(json: string, cap: number | null, finish: 'stop' | 'tool_calls'): Reply {
  let content = json;
  let finishReason: Reply['finishReason'] = finish;
  if (cap !== null && countText(json) > cap) {
    // The longest prefix within the cap (token counts grow with the prefix).
    let lo = 0;
    let hi = json.length;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (countText(json.slice(0, mid)) <= cap) lo = mid;
      else hi = mid - 1;
    }
    content = json.slice(0, lo);
    finishReason = 'length';
  }
  // Fragments cut through tokens, so a fragment's count is the growth of the
  // prefix count: the fragments' counts then add up to the whole text's.
  const pieces: Piece[] = [];
  let before = 0;
  for (let i = 0; i < content.length; i += FRAGMENT_CHARS) {
    const upTo = countText(content.slice(0, i + FRAGMENT_CHARS));
    pieces.push({ text: content.slice(i, i + FRAGMENT_CHARS), tokens: Math.max(0, upTo - before) });
    before = Math.max(before, upTo);
  }
  return { content, pieces, completionTokens: countText(content), finishReason };
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

/** `logprobs` / `top_logprobs`: the number of alternatives per token, or null when logprobs are off. */
function parseLogprobs(body: Record<string, unknown>): number | null | ApiError {
  const on = body.logprobs;
  if (on !== undefined && on !== null && typeof on !== 'boolean')
    return invalidRequest("Invalid type for 'logprobs': expected a boolean.", 'logprobs', 'invalid_type');
  const top = body.top_logprobs;
  if (top === undefined || top === null) return on === true ? 0 : null;
  if (typeof top !== 'number' || !Number.isInteger(top))
    return invalidRequest("Invalid type for 'top_logprobs': expected an integer.", 'top_logprobs', 'invalid_type');
  if (top < 0 || top > MAX_TOP_LOGPROBS) {
    return invalidRequest(
      `Invalid 'top_logprobs': integer ${top < 0 ? 'below minimum' : 'above maximum'} value. Expected a value ${top < 0 ? '>= 0' : `<= ${MAX_TOP_LOGPROBS}`}, but got ${top} instead.`,
      'top_logprobs',
      top < 0 ? 'integer_below_min_value' : 'integer_above_max_value',
    );
  }
  if (on !== true)
    return invalidRequest("Invalid value for 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is used.", 'top_logprobs', 'invalid_value');
  return top;
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
