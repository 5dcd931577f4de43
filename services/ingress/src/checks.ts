import { isJsonObject } from '@sluice/contracts';
import { invalid } from './rejection.js';

// The field checks the body checks are made of. Each refuses with a coded 400 naming the field's
// path; `null` counts as absent, as OpenAI's SDKs send it for unset fields. None of them copies or
// changes a value: the body goes upstream as the client sent it.

export type Json = Record<string, unknown>;

const MAX_ID_CHARS = 256;
// OpenAI's own metadata limits, so a request valid here is valid upstream
const MAX_METADATA_KEYS = 16;
const MAX_METADATA_KEY_CHARS = 64;
const MAX_METADATA_VALUE_CHARS = 512;

export const absent = (v: unknown): v is undefined | null => v === undefined || v === null;

/** The model asked for: absent means `auto` (the router chooses; the invoker then sets the routed model in the body). */
export function model(v: unknown): string {
  return absent(v) ? 'auto' : text(v, 'model');
}

export function optionalBoolean(obj: Json, field: string, param = field): boolean | undefined {
  const v = obj[field];
  if (absent(v)) return undefined;
  if (typeof v !== 'boolean') throw invalid(param, `${param} must be a boolean.`);
  return v;
}

/** An identifier-like string (user, feature, a message's name): 1 to 256 characters. */
export function optionalText(obj: Json, field: string, param = field): string | undefined {
  const v = obj[field];
  return absent(v) ? undefined : text(v, param);
}

export function text(v: unknown, param: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_ID_CHARS)
    throw invalid(param, `${param} must be a non-empty string of at most ${MAX_ID_CHARS} characters.`);
  return v;
}

/** Any string, empty included (a prompt, instructions, an id Sluice only passes on). */
export function optionalString(obj: Json, field: string, param = field): string | undefined {
  const v = obj[field];
  if (absent(v)) return undefined;
  if (typeof v !== 'string') throw invalid(param, `${param} must be a string.`);
  return v;
}

export function number(obj: Json, field: string, min: number, max: number, param = field, kind: 'number' | 'integer' = 'number'): number | undefined {
  const v = obj[field];
  if (absent(v)) return undefined;
  const ok = typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max && (kind === 'number' || Number.isInteger(v));
  if (!ok) {
    const range = max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`;
    throw invalid(param, `${param} must be ${kind === 'number' ? 'a number' : 'an integer'} ${range}.`);
  }
  return v;
}

export function integer(obj: Json, field: string, min: number, max = Number.MAX_SAFE_INTEGER, param = field): number | undefined {
  return number(obj, field, min, max, param, 'integer');
}

/** An array of objects (tools, tool calls, input items); returns it, or undefined when absent. */
export function optionalObjects(obj: Json, field: string, param = field): Json[] | undefined {
  const v = obj[field];
  if (absent(v)) return undefined;
  if (!Array.isArray(v)) throw invalid(param, `${param} must be an array of objects.`);
  v.forEach((item, i) => {
    if (!isJsonObject(item)) throw invalid(`${param}[${i}]`, `${param}[${i}] must be an object.`);
  });
  return v as Json[];
}

export function optionalObject(obj: Json, field: string, param = field): Json | undefined {
  const v = obj[field];
  if (absent(v)) return undefined;
  if (!isJsonObject(v)) throw invalid(param, `${param} must be an object.`);
  return v;
}

/** OpenAI's metadata: at most 16 string values, keys up to 64 characters, values up to 512. */
export function metadata(body: Json): void {
  const v = body.metadata;
  if (absent(v)) return;
  if (!isJsonObject(v)) throw invalid('metadata', 'metadata must be an object of string values.');
  const entries = Object.entries(v);
  if (entries.length > MAX_METADATA_KEYS) throw invalid('metadata', `metadata may hold at most ${MAX_METADATA_KEYS} keys.`);
  for (const [k, value] of entries) {
    if (k.length === 0 || k.length > MAX_METADATA_KEY_CHARS) throw invalid('metadata', `metadata keys must be 1 to ${MAX_METADATA_KEY_CHARS} characters.`);
    if (typeof value !== 'string') throw invalid(`metadata.${k}`, `metadata.${k} must be a string.`);
    if (value.length > MAX_METADATA_VALUE_CHARS) throw invalid(`metadata.${k}`, `metadata.${k} must be at most ${MAX_METADATA_VALUE_CHARS} characters.`);
  }
}

/** OpenAI's function names: letters, digits, `_` and `-`, 1 to 64 characters. */
const FUNCTION_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

export function functionName(v: unknown, param: string): void {
  if (typeof v !== 'string' || !FUNCTION_NAME.test(v))
    throw invalid(param, `${param} must match ${String(FUNCTION_NAME)} (letters, digits, _ and -, at most 64).`);
}
