import { isRecord } from './util.js';

/** Nesting beyond this gives up on the schema and answers null (cyclic $refs). */
const MAX_DEPTH = 8;
const FALLBACK_WORD = 'sim';

/**
 * A deterministic JSON value valid against a (JSON-Schema subset) `schema`:
 * object → its required properties, string → a word from `words`, number /
 * integer → a small number within any bounds, boolean → true, enum / const →
 * the first value, array → `minItems` (at least one) items, anyOf / oneOf →
 * the first branch, local `$ref`s (`#/$defs/…`, `#/definitions/…`) resolved.
 * Words are taken in turn, so one schema gets varied but stable strings.
 */
export function valueForSchema(schema: unknown, words: readonly string[]): unknown {
  const cursor = { next: 0 };
  const word = (): string => (words.length === 0 ? FALLBACK_WORD : (words[cursor.next++ % words.length] as string));
  return build(schema, schema, word, 0);
}

function build(schema: unknown, root: unknown, word: () => string, depth: number): unknown {
  if (depth > MAX_DEPTH || !isRecord(schema)) return depth > MAX_DEPTH ? null : word();
  if (typeof schema.$ref === 'string') return build(resolveRef(schema.$ref, root), root, word, depth + 1);
  if ('const' in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  for (const k of ['anyOf', 'oneOf', 'allOf'] as const) {
    const branches = schema[k];
    if (Array.isArray(branches) && branches.length > 0) {
      const list = branches as unknown[];
      const branch = list.find((b) => !(isRecord(b) && b.type === 'null')) ?? list[0];
      return build(branch, root, word, depth + 1);
    }
  }
  switch (typeOf(schema)) {
    case 'object':
      return objectFor(schema, root, word, depth);
    case 'array': {
      const min = typeof schema.minItems === 'number' ? schema.minItems : 1;
      const max = typeof schema.maxItems === 'number' ? schema.maxItems : Math.max(1, min);
      const count = Math.min(Math.max(1, min), max);
      const out: unknown[] = [];
      for (let i = 0; i < count; i++) out.push(build(schema.items, root, word, depth + 1));
      return out;
    }
    case 'integer':
    case 'number':
      return numberFor(schema);
    case 'boolean':
      return true;
    case 'null':
      return null;
    default:
      return stringFor(schema, word());
  }
}

function typeOf(schema: Record<string, unknown>): string | undefined {
  const t = schema.type;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) return (t.find((x) => x !== 'null') ?? t[0]) as string | undefined;
  if (isRecord(schema.properties)) return 'object';
  if (schema.items !== undefined) return 'array';
  return undefined;
}

function objectFor(schema: Record<string, unknown>, root: unknown, word: () => string, depth: number): Record<string, unknown> {
  const props = isRecord(schema.properties) ? schema.properties : {};
  const required = Array.isArray(schema.required) ? schema.required.filter((k): k is string => typeof k === 'string') : [];
  const out: Record<string, unknown> = {};
  for (const key of required) out[key] = build(props[key], root, word, depth + 1);
  return out;
}

function numberFor(schema: Record<string, unknown>): number {
  const int = schema.type === 'integer' || (Array.isArray(schema.type) && schema.type.includes('integer'));
  let v = 1;
  if (typeof schema.minimum === 'number') v = Math.max(v, schema.minimum);
  if (typeof schema.exclusiveMinimum === 'number') v = Math.max(v, schema.exclusiveMinimum + 1);
  if (typeof schema.maximum === 'number') v = Math.min(v, schema.maximum);
  if (typeof schema.exclusiveMaximum === 'number') v = Math.min(v, schema.exclusiveMaximum - 1);
  return int ? Math.ceil(v) : v;
}

function stringFor(schema: Record<string, unknown>, w: string): string {
  let s = w;
  if (typeof schema.minLength === 'number') while (s.length < schema.minLength) s += w;
  if (typeof schema.maxLength === 'number') s = s.slice(0, schema.maxLength);
  return s;
}

function resolveRef(ref: string, root: unknown): unknown {
  if (!ref.startsWith('#')) return undefined;
  let node: unknown = root;
  for (const part of ref
    .slice(1)
    .split('/')
    .filter((p) => p !== '')) {
    if (!isRecord(node)) return undefined;
    node = node[part.replaceAll('~1', '/').replaceAll('~0', '~')];
  }
  return node;
}
