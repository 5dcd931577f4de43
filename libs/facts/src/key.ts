import { createHash } from 'node:crypto';
import type { Endpoint } from './facts.js';
import type { Json } from './shapes.js';

/**
 * Top-level fields that cannot change the answer, left out of the key: how it is delivered
 * (`stream`, `stream_options`, `store`), who asked and how they label it (`user`,
 * `safety_identifier`, `metadata`), OpenAI's own prompt-cache routing (`prompt_cache_key`), and
 * Sluice's hints (`feature`, `priority`). Everything else splits the key — `service_tier`
 * included, since a tier can change the model's answer and latency.
 */
const IGNORED = new Set(['stream', 'stream_options', 'user', 'safety_identifier', 'store', 'metadata', 'prompt_cache_key', 'feature', 'priority']);

/**
 * The exact-cache key of a request: `<tenant>.<sha256 hex>` of a canonical JSON (object keys
 * sorted at every depth, undefined members dropped) of `{ tenant, endpoint, body }` with the
 * IGNORED fields left out. Strings are kept exactly as sent — two prompts that differ in
 * indentation are two prompts — and the model as requested (`auto` stays `auto`, so the
 * router's choice does not split the key).
 *
 * The tenant is inside the hash and is the key's prefix, so one tenant can never read another's
 * answers, and a tenant's entries can be listed or purged with `<tenant>.>`. Linear in the
 * body's size, ~0.5 µs a small message, and never throws (no recursion: nesting depth costs
 * nothing).
 *
 * A cache namespace (`x-sluice-cache-namespace`, already checked against
 * `CACHE_NAMESPACE_PATTERN`) is hashed in as one more member: two namespaces never share an
 * answer, and no namespace hashes exactly as before namespaces existed, so entries stored then
 * stay valid. It is not in the prefix: purging a namespace alone is not a need, and the key
 * keeps the `<tenant>.<sha256>` shape every bucket expects.
 *
 * @example
 * cacheKey('acme', 'chat.completions', { model: 'auto', messages: [{ role: 'user', content: 'hi' }] }) // 'acme.3f9c…'
 * cacheKey('acme', 'chat.completions', { model: 'auto', messages: [{ role: 'user', content: 'hi' }] }, 'docs-v2') // 'acme.81d0…', another key
 */
export function cacheKey(tenant: string, endpoint: Endpoint, body: Json, namespace?: string): string {
  const kept: Json = {};
  for (const k of Object.keys(body)) if (!IGNORED.has(k)) kept[k] = body[k];
  // an undefined member is dropped by canonicalJson: no namespace, the material of old
  return `${tenant}.${createHash('sha256')
    .update(canonicalJson({ tenant, endpoint, namespace, body: kept }), 'utf8')
    .digest('hex')}`;
}

type Frame = { array: readonly unknown[]; at: number } | { object: Json; keys: string[]; at: number };

/**
 * JSON with object keys sorted at every depth (by UTF-16 code unit, as Array.sort does) and
 * undefined members dropped (undefined in an array is `null`, as in JSON.stringify). Walks
 * with its own stack rather than recursion, so no nesting makes it throw.
 */
export function canonicalJson(value: unknown): string {
  const frames: Frame[] = [];
  let out = open(value, frames);
  while (frames.length > 0) {
    const frame = frames[frames.length - 1]!;
    if ('array' in frame) {
      if (frame.at === frame.array.length) {
        out += ']';
        frames.pop();
        continue;
      }
      if (frame.at > 0) out += ',';
      const item = frame.array[frame.at++];
      out += open(item === undefined ? null : item, frames);
    } else {
      if (frame.at === frame.keys.length) {
        out += '}';
        frames.pop();
        continue;
      }
      const key = frame.keys[frame.at]!;
      out += `${frame.at++ > 0 ? ',' : ''}${quote(key)}:${open(frame.object[key], frames)}`;
    }
  }
  return out;
}

/** A scalar's JSON, or the opening bracket of a container whose frame it pushes. */
function open(value: unknown, frames: Frame[]): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    frames.push({ array: value, at: 0 });
    return '[';
  }
  const object = value as Json;
  frames.push({ object, keys: sortedKeys(object), at: 0 });
  return '{';
}

// Sorting and quoting keys is most of the work for small messages: an insertion sort beats
// Array.sort's comparator calls for the few keys of a message (Array.sort past a few, so a
// hostile object of many keys stays n log n), and the few distinct key names are quoted once.
const SMALL = 12;
const quoted = new Map<string, string>();
const QUOTED_MAX = 4_096;

function sortedKeys(object: Json): string[] {
  const keys = Object.keys(object).filter((k) => object[k] !== undefined);
  if (keys.length > SMALL) return keys.sort();
  for (let i = 1; i < keys.length; i++) {
    const key = keys[i]!;
    let j = i - 1;
    for (; j >= 0 && keys[j]! > key; j--) keys[j + 1] = keys[j]!;
    keys[j + 1] = key;
  }
  return keys;
}

function quote(key: string): string {
  let q = quoted.get(key);
  if (q === undefined) {
    q = JSON.stringify(key);
    if (quoted.size < QUOTED_MAX) quoted.set(key, q);
  }
  return q;
}
