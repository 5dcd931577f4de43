import type { Format, Tool } from './reply.js';
import { type ApiError, invalidRequest } from './errors.js';
import { MAX_TOP_LOGPROBS } from './logprobs.js';
import { isRecord } from './util.js';

/** `tools`, validated; `chosen` is undefined when tool_choice is "none". */
export function parseTools(body: Record<string, unknown>): { chosen: Tool | undefined } | ApiError | undefined {
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

/** `response_format`; undefined for plain text. */
export function parseResponseFormat(body: Record<string, unknown>): Format | ApiError | undefined {
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

/** `logprobs` / `top_logprobs`: the number of alternatives per token, or null when logprobs are off. */
export function parseLogprobs(body: Record<string, unknown>): number | null | ApiError {
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
export function positiveInt(body: Record<string, unknown>, key: string): number | ApiError | undefined {
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
