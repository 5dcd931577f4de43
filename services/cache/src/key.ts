import { createHash } from 'node:crypto';
import type { ChatMessage, ChatRequest } from '@sluice/contracts';

/**
 * The exact-cache key of a request: `<tenant>.<sha256 hex>` of a canonical JSON of the tenant,
 * the model as requested (`auto` stays `auto`, so the router's choice does not split the key),
 * the normalized messages and the sampling params. Two requests that differ only in key order,
 * surrounding or repeated whitespace, or params left undefined share a key.
 *
 * The tenant is inside the hash and is the key's prefix, so one tenant can never read another's
 * answers, and a tenant's entries can be listed or purged with `<tenant>.>`.
 *
 * Collapsing whitespace means two prompts that differ only in indentation share an answer: a
 * deliberate trade of hit rate for exactness.
 *
 * @example
 * cacheKey('acme', request) // 'acme.3f9c…'
 */
export function cacheKey(tenant: string, request: ChatRequest): string {
  const material = {
    tenant,
    model: request.model,
    messages: request.messages.map(normalizeMessage),
    params: request.params,
  };
  return `${tenant}.${createHash('sha256').update(canonicalJson(material), 'utf8').digest('hex')}`;
}

function normalizeMessage(m: ChatMessage) {
  return { role: m.role, content: m.content.trim().replace(/\s+/g, ' '), name: m.name };
}

/** JSON with object keys sorted at every depth and undefined members dropped. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const members = Object.keys(value)
    .sort()
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
  return `{${members.join(',')}}`;
}
