import { ChatMessage, Priority, type ChatRequest, type SamplingParams, type SluiceConfig, type Tenant } from '@sluice/contracts';
import { invalid, RequestRejected } from './rejection.js';

/**
 * Request facts that arrive outside the JSON body: HTTP `x-sluice-*` headers, NATS headers.
 * `param` is what an error names (the header), since the caller did not put it in the body.
 */
export interface ChatHints {
  feature?: { value: string; param: string };
  priority?: { value: string; param: string };
  cache?: { value: string; param: string };
}

export interface NormalisedChat {
  request: ChatRequest;
  /** OpenAI `stream_options.include_usage`: HTTP sends a usage chunk before `[DONE]`. */
  includeUsage: boolean;
}

// the contracts' own unions, so a role or priority added there is accepted here
const ROLES: ReadonlySet<string> = new Set(ChatMessage.properties.role.anyOf.map((r) => r.const));
const PRIORITIES: ReadonlySet<string> = new Set(Priority.anyOf.map((p) => p.const));
const MAX_ID_CHARS = 256;
// OpenAI's own metadata limits, so a request valid here is valid upstream
const MAX_METADATA_KEYS = 16;
const MAX_METADATA_KEY_CHARS = 64;
const MAX_METADATA_VALUE_CHARS = 512;

type Json = Record<string, unknown>;

/**
 * Validates a chat request body (OpenAI shape plus Sluice's `feature`, `priority`, `metadata`)
 * and normalises it into a `ChatRequest`. Both front doors use it. Unknown fields are ignored,
 * as OpenAI's SDKs send ones Sluice has no use for; fields that would change the answer's shape
 * and that Sluice cannot honour (n > 1, tools) are refused. `null` means absent.
 *
 * @throws RequestRejected invalid_request, naming the field in `param` and the message.
 * @example
 * const { request } = normaliseChat({ messages: [{ role: 'user', content: 'hi' }] }, {}, { maxMessages: 256 });
 * // request.model === 'auto', request.priority === 'standard'
 */
export function normaliseChat(body: unknown, hints: ChatHints, limits: { maxMessages: number }): NormalisedChat {
  if (!isObject(body)) throw invalid('body', 'The request body must be a JSON object.');
  const stream = optionalBoolean(body, 'stream') ?? false;
  const streamOptions = body.stream_options ?? null;
  if (streamOptions !== null) {
    if (!isObject(streamOptions)) throw invalid('stream_options', 'stream_options must be an object.');
    if (!stream) throw invalid('stream_options', 'stream_options is only allowed when stream is true.');
  }
  const includeUsage = streamOptions !== null ? (optionalBoolean(streamOptions, 'include_usage', 'stream_options.include_usage') ?? false) : false;
  const n = body.n ?? null;
  if (n !== null && n !== 1) throw invalid('n', 'n must be 1: Sluice returns a single choice.');
  for (const field of ['tools', 'functions'] as const) {
    const v = body[field];
    if (v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0)) throw invalid(field, `${field} are not supported by Sluice.`);
  }

  const request: ChatRequest = {
    model: model(body.model),
    messages: messages(body.messages, limits.maxMessages),
    priority: priority(hints.priority ?? fromBody(body, 'priority')),
    stream,
    params: sampling(body),
    cache: cache(hints.cache),
  };
  const user = optionalText(body, 'user');
  if (user !== undefined) request.user = user;
  const feature = hints.feature ? text(hints.feature.value, hints.feature.param) : optionalText(body, 'feature');
  if (feature !== undefined) request.feature = feature;
  const meta = metadata(body.metadata);
  if (meta) request.metadata = meta;
  return { request, includeUsage };
}

/**
 * Checks that the model exists and that the tenant may use it (`auto` always may: the router
 * picks among the configured tiers).
 *
 * @throws RequestRejected model_not_found | model_not_allowed
 */
export function checkModel(request: ChatRequest, tenant: Tenant, config: SluiceConfig): void {
  const { model, user } = request;
  if (model === 'auto') return;
  const known = { model, ...(user !== undefined ? { user } : {}) };
  if (!Object.prototype.hasOwnProperty.call(config.models, model)) {
    throw new RequestRejected(
      'model_not_found',
      `The model ${JSON.stringify(model)} does not exist; GET /v1/models lists the models you may use.`,
      'model',
      known,
    );
  }
  if (tenant.models && !tenant.models.includes(model)) {
    throw new RequestRejected('model_not_allowed', `Tenant ${tenant.id} may not use the model ${JSON.stringify(model)}.`, 'model', known);
  }
}

/** `normaliseChat` then `checkModel`: everything both front doors check after authentication. */
export function validateChat(body: unknown, hints: ChatHints, tenant: Tenant, config: SluiceConfig): NormalisedChat {
  const normalised = normaliseChat(body, hints, config.ingress);
  checkModel(normalised.request, tenant, config);
  return normalised;
}

/**
 * Deepest nesting of arrays and objects a body may have. A chat request needs 4 levels
 * (body, messages, message, content parts); JSON schemas in fields Sluice passes over need a
 * few more. JSON.parse builds deep nesting ~25 times slower than flat text (90 ms for 1 MB
 * of "[[[…", docs/input-bounds.md), so deeper bodies are refused before parsing.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * Parses a request body's text; both front doors read bodies with it.
 *
 * @throws RequestRejected invalid_json | invalid_request (nested deeper than MAX_JSON_DEPTH)
 */
export function parseJsonBody(text: string): unknown {
  if (text.trim().length === 0) throw new RequestRejected('invalid_json', 'The request body is empty; send a JSON object.', 'body');
  if (nestsDeeperThan(text, MAX_JSON_DEPTH)) {
    throw new RequestRejected('invalid_request', `The request body nests arrays or objects more than ${MAX_JSON_DEPTH} levels deep.`, 'body');
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new RequestRejected('invalid_json', `The request body is not valid JSON: ${(e as Error).message}`, 'body');
  }
}

/**
 * Whether JSON text nests arrays and objects deeper than `max`, brackets inside strings aside.
 * One pass, no allocation: a string is skipped with indexOf to its closing quote, so a body
 * that is mostly prompt text costs ~0.1 ms a megabyte. Malformed text is left to JSON.parse.
 */
function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // to the closing quote: the next one not escaped by an odd run of backslashes
      for (;;) {
        const end = text.indexOf('"', i + 1);
        if (end < 0) return false;
        let slashes = 0;
        while (text.charCodeAt(end - 1 - slashes) === 0x5c) slashes++;
        i = end;
        if (slashes % 2 === 0) break;
      }
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}

function model(v: unknown): string {
  if (v === undefined || v === null) return 'auto';
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_ID_CHARS)
    throw invalid('model', `model must be a non-empty string of at most ${MAX_ID_CHARS} characters.`);
  return v;
}

function messages(v: unknown, max: number): ChatMessage[] {
  if (v === undefined || v === null) throw invalid('messages', 'messages is required.');
  if (!Array.isArray(v)) throw invalid('messages', 'messages must be an array.');
  if (v.length === 0) throw invalid('messages', 'messages must contain at least one message.');
  if (v.length > max) throw invalid('messages', `messages has ${v.length} entries; at most ${max} are allowed.`);
  return v.map((m, i) => message(m, `messages[${i}]`));
}

function message(v: unknown, path: string): ChatMessage {
  if (!isObject(v)) throw invalid(path, `${path} must be an object.`);
  const role = v.role;
  if (typeof role !== 'string' || !ROLES.has(role)) throw invalid(`${path}.role`, `${path}.role must be one of ${[...ROLES].join(', ')}.`);
  const out: ChatMessage = { role: role as ChatMessage['role'], content: content(v.content, `${path}.content`) };
  const name = optionalText(v, 'name', `${path}.name`);
  if (name !== undefined) out.name = name;
  return out;
}

/** A string, or OpenAI content parts of which only text parts are supported (joined by newlines). */
function content(v: unknown, path: string): string {
  if (typeof v === 'string') return v;
  if (!Array.isArray(v)) throw invalid(path, `${path} must be a string or an array of text parts.`);
  if (v.length === 0) throw invalid(path, `${path} must contain at least one text part.`);
  return v
    .map((part, i) => {
      if (!isObject(part) || part.type !== 'text')
        throw invalid(`${path}[${i}]`, `${path}[${i}] must be a text part ({"type":"text","text":"..."}); other content types are not supported.`);
      if (typeof part.text !== 'string') throw invalid(`${path}[${i}].text`, `${path}[${i}].text must be a string.`);
      return part.text;
    })
    .join('\n');
}

function priority(v: { value: unknown; param: string } | undefined): Priority {
  if (v === undefined) return 'standard';
  if (typeof v.value !== 'string' || !PRIORITIES.has(v.value)) throw invalid(v.param, `${v.param} must be one of ${[...PRIORITIES].join(', ')}.`);
  return v.value as Priority;
}

function cache(v: { value: string; param: string } | undefined): ChatRequest['cache'] {
  if (v === undefined || v.value === 'default') return 'default';
  if (v.value === 'skip') return 'skip';
  throw invalid(v.param, `${v.param} must be "skip" (or absent).`);
}

function sampling(body: Json): SamplingParams {
  const p: SamplingParams = {};
  const temperature = number(body, 'temperature', 0, 2);
  if (temperature !== undefined) p.temperature = temperature;
  const topP = number(body, 'top_p', 0, 1);
  if (topP !== undefined) p.top_p = topP;
  // max_completion_tokens replaces the deprecated max_tokens in OpenAI's API; it wins when both come
  const maxTokens = integer(body, 'max_completion_tokens', 1, 128_000) ?? integer(body, 'max_tokens', 1, 128_000);
  if (maxTokens !== undefined) p.max_tokens = maxTokens;
  const stop = stopSequences(body.stop);
  if (stop) p.stop = stop;
  const presence = number(body, 'presence_penalty', -2, 2);
  if (presence !== undefined) p.presence_penalty = presence;
  const frequency = number(body, 'frequency_penalty', -2, 2);
  if (frequency !== undefined) p.frequency_penalty = frequency;
  const seed = integer(body, 'seed', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  if (seed !== undefined) p.seed = seed;
  return p;
}

function stopSequences(v: unknown): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string' || s.length === 0)) {
    throw invalid('stop', 'stop must be a non-empty string or an array of non-empty strings.');
  }
  if (list.length > 4) throw invalid('stop', 'stop may hold at most 4 sequences.');
  return list.length ? (list as string[]) : undefined;
}

function metadata(v: unknown): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw invalid('metadata', 'metadata must be an object of string values.');
  const entries = Object.entries(v);
  if (entries.length > MAX_METADATA_KEYS) throw invalid('metadata', `metadata may hold at most ${MAX_METADATA_KEYS} keys.`);
  for (const [k, value] of entries) {
    if (k.length === 0 || k.length > MAX_METADATA_KEY_CHARS) throw invalid('metadata', `metadata keys must be 1 to ${MAX_METADATA_KEY_CHARS} characters.`);
    if (typeof value !== 'string') throw invalid(`metadata.${k}`, `metadata.${k} must be a string.`);
    if (value.length > MAX_METADATA_VALUE_CHARS) throw invalid(`metadata.${k}`, `metadata.${k} must be at most ${MAX_METADATA_VALUE_CHARS} characters.`);
  }
  // fromEntries defines own properties, so a "__proto__" key stays data and never a prototype
  return entries.length ? (Object.fromEntries(entries) as Record<string, string>) : undefined;
}

function fromBody(body: Json, field: string): { value: unknown; param: string } | undefined {
  const value = body[field];
  return value === undefined || value === null ? undefined : { value, param: field };
}

function optionalBoolean(obj: Json, field: string, param = field): boolean | undefined {
  const v = obj[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw invalid(param, `${param} must be a boolean.`);
  return v;
}

function optionalText(obj: Json, field: string, param = field): string | undefined {
  const v = obj[field];
  return v === undefined || v === null ? undefined : text(v, param);
}

function text(v: unknown, param: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_ID_CHARS)
    throw invalid(param, `${param} must be a non-empty string of at most ${MAX_ID_CHARS} characters.`);
  return v;
}

function number(obj: Json, field: string, min: number, max: number, kind: 'number' | 'integer' = 'number'): number | undefined {
  const v = obj[field];
  if (v === undefined || v === null) return undefined;
  const ok = typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max && (kind === 'number' || Number.isInteger(v));
  if (!ok) throw invalid(field, `${field} must be ${kind === 'number' ? 'a number' : 'an integer'} from ${min} to ${max}.`);
  return v;
}

function integer(obj: Json, field: string, min: number, max: number): number | undefined {
  return number(obj, field, min, max, 'integer');
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
