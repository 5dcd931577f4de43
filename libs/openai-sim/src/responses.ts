import { contextLengthExceeded, lastUserText } from './completion.js';
import { type Format, MAX_REPLY_TOKENS, type Reply, replyTo, type Tool } from './reply.js';
import { type ApiError, apiError, invalidRequest, isApiError, modelNotFound } from './errors.js';
import { countPromptTokens, countText } from './tokens.js';
import { isRecord } from './util.js';
import { mediaTokens } from './media.js';

/** One turn of a conversation in chat shape (`content` a string or chat parts), as the token count reads it. */
export interface Turn {
  role: string;
  content: unknown;
}

/** Everything needed to answer a validated `POST /v1/responses`. */
export interface ResponsePlan {
  model: string;
  stream: boolean;
  promptTokens: number;
  reply: Reply;
  /** Whether the response is kept for a later `previous_response_id` (`store`, default true). */
  store: boolean;
  /** The conversation so far, this response's output included, for a later `previous_response_id`. */
  conversation: Turn[];
  /** Request fields the response object echoes back. */
  echo: ResponseEcho;
}

/** The request's settings as the response object reports them (OpenAI's defaults when not sent). */
interface ResponseEcho {
  instructions: string | null;
  maxOutputTokens: number | null;
  metadata: Record<string, unknown>;
  previousResponseId: string | null;
  temperature: number;
  topP: number;
  toolChoice: unknown;
  tools: unknown[];
  textFormat: unknown;
  parallelToolCalls: boolean;
}

/** OpenAI's lower bound for `max_output_tokens`. */
export const MIN_OUTPUT_TOKENS = 16;
const ROLES = new Set(['user', 'system', 'developer', 'assistant']);
const PART_TYPES = ['input_text', 'input_image', 'input_file', 'input_audio', 'output_text', 'refusal'];
const ITEM_TYPES = ['message', 'function_call', 'function_call_output'];

/**
 * Validates a Responses API request and plans its deterministic answer.
 * `previous` looks up the conversation of a stored response by id.
 */
export function planResponse(
  body: unknown,
  models: ReadonlySet<string>,
  contextWindow: (model: string) => number,
  previous: (id: string) => readonly Turn[] | undefined,
): ResponsePlan | ApiError {
  if (!isRecord(body)) return invalidRequest('The request body must be a JSON object.');
  const { model } = body;
  if (model === undefined || model === null || model === '') {
    return invalidRequest("Missing required parameter: 'model'.", 'model', 'missing_required_parameter');
  }
  if (typeof model !== 'string') return invalidRequest("Invalid type for 'model': expected a string.", 'model', 'invalid_type');

  const input = inputTurns(body.input);
  if (isApiError(input)) return input;
  const instructions = optional(body, 'instructions', 'string');
  if (isApiError(instructions)) return instructions;
  const previousId = optional(body, 'previous_response_id', 'string');
  if (isApiError(previousId)) return previousId;
  const maxOutput = maxOutputTokens(body.max_output_tokens);
  if (isApiError(maxOutput)) return maxOutput;
  const tools = parseTools(body);
  if (isApiError(tools)) return tools;
  const format = parseTextFormat(body.text);
  if (isApiError(format)) return format;
  for (const [key, lo, hi] of [
    ['temperature', 0, 2],
    ['top_p', 0, 1],
  ] as const) {
    const v = body[key];
    if (v !== undefined && v !== null && (typeof v !== 'number' || !(v >= lo && v <= hi))) {
      return invalidRequest(`Invalid '${key}': expected a number between ${lo} and ${hi}.`, key, 'invalid_value');
    }
  }
  for (const key of ['stream', 'store', 'parallel_tool_calls'] as const) {
    const v = body[key];
    if (v !== undefined && v !== null && typeof v !== 'boolean') return invalidRequest(`Invalid type for '${key}': expected a boolean.`, key, 'invalid_type');
  }
  const metadata = body.metadata;
  if (metadata !== undefined && metadata !== null && !isRecord(metadata)) {
    return invalidRequest("Invalid type for 'metadata': expected an object.", 'metadata', 'invalid_type');
  }

  if (!models.has(model)) return modelNotFound(model);
  let history: readonly Turn[] = [];
  if (previousId !== null) {
    const found = previous(previousId);
    if (found === undefined) return previousResponseNotFound(previousId);
    history = found;
  }
  const turns = [...history, ...input];
  if (turns.length === 0) return invalidRequest("Missing required parameter: 'input'.", 'input', 'missing_required_parameter');

  // Instructions are not carried over to a later response (OpenAI's rule), so they are counted but not kept.
  const prompt = instructions === null ? turns : [{ role: 'system', content: instructions }, ...turns];
  // The history was checked when it was stored; errors can only come from this input.
  const media = mediaTokens(input, 'input');
  if (isApiError(media)) return media;
  const earlier = mediaTokens(history);
  const mediaCount = media.image + media.audio + (isApiError(earlier) ? 0 : earlier.image + earlier.audio);
  const promptTokens = countPromptTokens(prompt) + mediaCount + (tools.list.length === 0 ? 0 : countText(JSON.stringify(body.tools)));
  const window = contextWindow(model);
  if (promptTokens + (maxOutput ?? 0) > window) return contextLengthExceeded(window, promptTokens, maxOutput, 'input');
  const room = window - promptTokens;
  const cap = maxOutput ?? (room < MAX_REPLY_TOKENS ? room : null);

  const text = lastUserText(turns);
  const tool = turns[turns.length - 1]?.role === 'user' ? tools.chosen : undefined;
  const reply = replyTo(text, 0, cap, tool, format);
  return {
    model,
    stream: body.stream === true,
    promptTokens,
    reply,
    store: body.store !== false,
    conversation: [...turns, { role: 'assistant', content: reply.content }],
    echo: {
      instructions,
      maxOutputTokens: maxOutput,
      metadata: isRecord(metadata) ? metadata : {},
      previousResponseId: previousId,
      temperature: typeof body.temperature === 'number' ? body.temperature : 1,
      topP: typeof body.top_p === 'number' ? body.top_p : 1,
      toolChoice: body.tool_choice ?? 'auto',
      tools: Array.isArray(body.tools) ? body.tools : [],
      textFormat: isRecord(body.text) && isRecord(body.text.format) ? body.text.format : { type: 'text' },
      parallelToolCalls: body.parallel_tool_calls !== false,
    },
  };
}

/** OpenAI's answer to a `previous_response_id` it does not have (never stored, `store: false`, or forgotten). */
function previousResponseNotFound(id: string): ApiError {
  return apiError(400, `Previous response with id '${id}' not found.`, 'invalid_request_error', 'previous_response_id', 'previous_response_not_found');
}

/** `input` as chat-shaped turns: a string is one user message; items are messages, function calls and their outputs. */
function inputTurns(input: unknown): Turn[] | ApiError {
  if (input === undefined || input === null) return [];
  if (typeof input === 'string') return [{ role: 'user', content: input }];
  if (!Array.isArray(input)) return invalidRequest("Invalid type for 'input': expected a string or an array of input items.", 'input', 'invalid_type');
  const turns: Turn[] = [];
  for (let i = 0; i < input.length; i++) {
    const item: unknown = input[i];
    const at = `input[${i}]`;
    if (!isRecord(item)) return invalidRequest(`Invalid type for '${at}': expected an object.`, at, 'invalid_type');
    const type = item.type ?? 'message';
    if (type === 'message') {
      const turn = messageTurn(item, at);
      if (isApiError(turn)) return turn;
      turns.push(turn);
    } else if (type === 'function_call_output') {
      if (typeof item.call_id !== 'string') return missing(`${at}.call_id`);
      if (typeof item.output !== 'string' && !Array.isArray(item.output)) return missing(`${at}.output`);
      turns.push({ role: 'tool', content: Array.isArray(item.output) ? chatParts(item.output) : item.output });
    } else if (type === 'function_call') {
      for (const key of ['call_id', 'name', 'arguments']) if (typeof item[key] !== 'string') return missing(`${at}.${key}`);
      turns.push({ role: 'assistant', content: item.arguments });
    } else {
      return invalidRequest(`Invalid value for '${at}.type': expected one of ${ITEM_TYPES.join(', ')}.`, `${at}.type`, 'invalid_value');
    }
  }
  return turns;
}

function messageTurn(item: Record<string, unknown>, at: string): Turn | ApiError {
  if (typeof item.role !== 'string' || !ROLES.has(item.role)) {
    return invalidRequest(`Invalid value for '${at}.role': expected one of ${[...ROLES].join(', ')}.`, `${at}.role`, 'invalid_value');
  }
  const c = item.content;
  if (typeof c === 'string') return { role: item.role, content: c };
  if (!Array.isArray(c)) {
    return invalidRequest(`Invalid type for '${at}.content': expected a string or an array of content parts.`, `${at}.content`, 'invalid_type');
  }
  for (let j = 0; j < c.length; j++) {
    const part: unknown = c[j];
    if (!isRecord(part) || typeof part.type !== 'string' || !PART_TYPES.includes(part.type)) {
      const p = `${at}.content[${j}].type`;
      return invalidRequest(`Invalid value for '${p}': expected one of ${PART_TYPES.join(', ')}.`, p, 'invalid_value');
    }
  }
  return { role: item.role, content: chatParts(c as Record<string, unknown>[]) };
}

/** Responses content parts in chat's shape, so that one token count serves both APIs. */
function chatParts(parts: readonly unknown[]): unknown[] {
  return parts.filter(isRecord).map((p) => {
    switch (p.type) {
      case 'input_text':
      case 'output_text':
        return { type: 'text', text: p.text };
      case 'refusal':
        return { type: 'text', text: p.refusal };
      case 'input_image':
        // An uploaded file is not read either: it counts as a remote image.
        return { type: 'image_url', image_url: { url: p.image_url ?? (typeof p.file_id === 'string' ? `file:${p.file_id}` : ''), detail: p.detail ?? 'auto' } };
      default:
        // input_audio keeps its shape; files are not read, so they count nothing.
        return p;
    }
  });
}

/** Function tools, and the one a call is due to (undefined for tool_choice 'none'). Other tool types are accepted and never called. */
function parseTools(body: Record<string, unknown>): { list: Tool[]; chosen: Tool | undefined } | ApiError {
  const raw = body.tools;
  if (raw === undefined || raw === null) return { list: [], chosen: undefined };
  if (!Array.isArray(raw)) return invalidRequest("Invalid type for 'tools': expected an array of objects.", 'tools', 'invalid_type');
  const list: Tool[] = [];
  for (let i = 0; i < raw.length; i++) {
    const t: unknown = raw[i];
    if (!isRecord(t) || typeof t.type !== 'string')
      return invalidRequest(`Invalid type for 'tools[${i}]': expected a tool object.`, `tools[${i}]`, 'invalid_type');
    if (t.type !== 'function') continue;
    if (typeof t.name !== 'string' || t.name === '') return missing(`tools[${i}].name`);
    list.push({ name: t.name, parameters: t.parameters ?? { type: 'object', properties: {} } });
  }
  const choice = body.tool_choice;
  if (choice === 'none' || list.length === 0) return { list, chosen: undefined };
  if (choice === undefined || choice === null || choice === 'auto' || choice === 'required') return { list, chosen: list[0] };
  const named = isRecord(choice) && choice.type === 'function' ? list.find((t) => t.name === choice.name) : undefined;
  if (named === undefined) {
    return invalidRequest(
      "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or {type: 'function', name} naming one of 'tools'.",
      'tool_choice',
      'invalid_value',
    );
  }
  return { list, chosen: named };
}

/** `text.format`; undefined for plain text. */
function parseTextFormat(text: unknown): Format | ApiError | undefined {
  if (text === undefined || text === null) return undefined;
  if (!isRecord(text)) return invalidRequest("Invalid type for 'text': expected an object.", 'text', 'invalid_type');
  const f = text.format;
  if (f === undefined || f === null) return undefined;
  if (!isRecord(f)) return invalidRequest("Invalid type for 'text.format': expected an object.", 'text.format', 'invalid_type');
  if (f.type === 'text') return undefined;
  if (f.type === 'json_object') return { kind: 'json_object' };
  if (f.type === 'json_schema') {
    if (typeof f.name !== 'string' || f.name === '') return missing('text.format.name');
    if (!isRecord(f.schema)) return missing('text.format.schema');
    return { kind: 'json_schema', schema: f.schema };
  }
  return invalidRequest("Invalid value for 'text.format.type': expected one of 'text', 'json_object', 'json_schema'.", 'text.format.type', 'invalid_value');
}

function maxOutputTokens(v: unknown): number | null | ApiError {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isInteger(v))
    return invalidRequest("Invalid type for 'max_output_tokens': expected an integer.", 'max_output_tokens', 'invalid_type');
  if (v < MIN_OUTPUT_TOKENS) {
    return invalidRequest(
      `Invalid 'max_output_tokens': integer below minimum value. Expected a value >= ${MIN_OUTPUT_TOKENS}, but got ${v} instead.`,
      'max_output_tokens',
      'integer_below_min_value',
    );
  }
  return v;
}

function optional(body: Record<string, unknown>, key: string, type: 'string'): string | null | ApiError {
  const v = body[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== type) return invalidRequest(`Invalid type for '${key}': expected a ${type}.`, key, 'invalid_type');
  return v as string;
}

function missing(param: string): ApiError {
  return invalidRequest(`Missing required parameter: '${param}'.`, param, 'missing_required_parameter');
}
