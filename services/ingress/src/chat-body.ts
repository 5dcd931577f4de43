import { isJsonObject } from '@sluice/contracts';
import { invalid } from './rejection.js';
import {
  absent,
  functionName,
  integer,
  metadata,
  model,
  number,
  optionalBoolean,
  optionalObject,
  optionalObjects,
  optionalString,
  optionalText,
  type Json,
} from './checks.js';
import type { BodyChoices } from './validate.js';

/** OpenAI's message roles (`function` is deprecated upstream, still accepted there). */
const ROLES: ReadonlySet<string> = new Set(['system', 'developer', 'user', 'assistant', 'tool', 'function']);
const TOOL_CHOICES: ReadonlySet<string> = new Set(['none', 'auto', 'required']);
const RESPONSE_FORMATS: ReadonlySet<string> = new Set(['text', 'json_object', 'json_schema']);

/**
 * Checks a chat completions body for what Sluice relies on (OpenAI's API reference, "Create chat
 * completion"): types, sizes and roles of what it reads and counts, and the shapes an upstream
 * would refuse less clearly. Every field, known or not, stays in the body as sent.
 *
 * @throws RequestRejected invalid_request naming the field's path in `param`.
 */
export function checkChatBody(body: Json, limits: { maxMessages: number }): BodyChoices {
  const requested = model(body.model);
  messages(body.messages, limits.maxMessages);
  const stream = optionalBoolean(body, 'stream') ?? false;
  const streamOptions = optionalObject(body, 'stream_options');
  if (streamOptions && !stream) throw invalid('stream_options', 'stream_options is only allowed when stream is true.');
  const includeUsage = streamOptions ? (optionalBoolean(streamOptions, 'include_usage', 'stream_options.include_usage') ?? false) : false;

  integer(body, 'n', 1, 128);
  integer(body, 'max_tokens', 1);
  integer(body, 'max_completion_tokens', 1);
  number(body, 'temperature', 0, 2);
  number(body, 'top_p', 0, 1);
  number(body, 'presence_penalty', -2, 2);
  number(body, 'frequency_penalty', -2, 2);
  integer(body, 'seed', Number.MIN_SAFE_INTEGER);
  stop(body.stop);
  tools(body);
  toolChoice(body.tool_choice);
  responseFormat(body);
  logitBias(body);
  const logprobs = optionalBoolean(body, 'logprobs');
  if (integer(body, 'top_logprobs', 0, 20) !== undefined && logprobs !== true) throw invalid('top_logprobs', 'top_logprobs needs logprobs: true.');
  metadata(body);
  const user = optionalText(body, 'user');
  return { model: requested, stream, includeUsage, ...(user !== undefined ? { user } : {}) };
}

function messages(v: unknown, max: number): void {
  if (absent(v)) throw invalid('messages', 'messages is required.');
  if (!Array.isArray(v)) throw invalid('messages', 'messages must be an array.');
  if (v.length === 0) throw invalid('messages', 'messages must contain at least one message.');
  if (v.length > max) throw invalid('messages', `messages has ${v.length} entries; at most ${max} are allowed.`);
  v.forEach((m, i) => message(m, `messages[${i}]`));
}

function message(m: unknown, path: string): void {
  if (!isJsonObject(m)) throw invalid(path, `${path} must be an object.`);
  const role = m.role;
  if (typeof role !== 'string' || !ROLES.has(role)) throw invalid(`${path}.role`, `${path}.role must be one of ${[...ROLES].join(', ')}.`);
  optionalText(m, 'name', `${path}.name`);
  if (role === 'tool' && typeof m.tool_call_id !== 'string')
    throw invalid(`${path}.tool_call_id`, `${path}.tool_call_id must be a string (the call it answers).`);
  const toolCalls = role === 'assistant' ? optionalObjects(m, 'tool_calls', `${path}.tool_calls`) : undefined;
  if (role === 'assistant') optionalString(m, 'refusal', `${path}.refusal`);
  if (absent(m.content)) {
    // an assistant turn that called tools (or a function), or refused, has no content
    const answeredOtherwise = (toolCalls?.length ?? 0) > 0 || isJsonObject(m.function_call) || typeof m.refusal === 'string';
    if (role === 'assistant' && answeredOtherwise) return;
    throw invalid(`${path}.content`, `${path}.content is required (null only on an assistant message with tool_calls, function_call or refusal).`);
  }
  content(m.content, `${path}.content`);
}

/** A string, or an array of content parts (text, image_url, input_audio, file, ...). */
function content(v: unknown, path: string): void {
  if (typeof v === 'string') return;
  if (!Array.isArray(v)) throw invalid(path, `${path} must be a string or an array of content parts.`);
  if (v.length === 0) throw invalid(path, `${path} must contain at least one content part.`);
  v.forEach((part, i) => {
    const at = `${path}[${i}]`;
    if (!isJsonObject(part) || typeof part.type !== 'string') throw invalid(at, `${at} must be a content part: an object with a string type.`);
    if (part.type === 'text' && typeof part.text !== 'string') throw invalid(`${at}.text`, `${at}.text must be a string.`);
    if (part.type === 'image_url') {
      const image = part.image_url;
      if (!isJsonObject(image)) throw invalid(`${at}.image_url`, `${at}.image_url must be an object with a url.`);
      if (typeof image.url !== 'string') throw invalid(`${at}.image_url.url`, `${at}.image_url.url must be a string (an https or data URL).`);
    }
  });
}

function stop(v: unknown): void {
  if (absent(v)) return;
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string' || s.length === 0)) {
    throw invalid('stop', 'stop must be a non-empty string or an array of non-empty strings.');
  }
  if (list.length > 4) throw invalid('stop', 'stop may hold at most 4 sequences.');
}

function tools(body: Json): void {
  const list = optionalObjects(body, 'tools') ?? [];
  list.forEach((tool, i) => {
    if (tool.type !== 'function') return;
    if (!isJsonObject(tool.function)) throw invalid(`tools[${i}].function`, `tools[${i}].function must be an object with a name.`);
    functionName(tool.function.name, `tools[${i}].function.name`);
  });
}

function toolChoice(v: unknown): void {
  if (absent(v)) return;
  if (typeof v === 'string' && TOOL_CHOICES.has(v)) return;
  if (isJsonObject(v) && typeof v.type === 'string') return;
  throw invalid('tool_choice', `tool_choice must be one of ${[...TOOL_CHOICES].join(', ')}, or an object with a type.`);
}

function responseFormat(body: Json): void {
  const format = optionalObject(body, 'response_format');
  if (!format) return;
  if (typeof format.type !== 'string' || !RESPONSE_FORMATS.has(format.type))
    throw invalid('response_format.type', `response_format.type must be one of ${[...RESPONSE_FORMATS].join(', ')}.`);
  if (format.type !== 'json_schema') return;
  const schema = format.json_schema;
  if (!isJsonObject(schema)) throw invalid('response_format.json_schema', 'response_format.json_schema must be an object with a name.');
  if (typeof schema.name !== 'string' || schema.name.length === 0)
    throw invalid('response_format.json_schema.name', 'response_format.json_schema.name must be a string.');
}

function logitBias(body: Json): void {
  const bias = optionalObject(body, 'logit_bias');
  for (const token of Object.keys(bias ?? {})) number(bias!, token, -100, 100, `logit_bias.${token}`);
}
