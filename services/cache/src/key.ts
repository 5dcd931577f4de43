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
  // canonicalJson({ tenant, model, messages, params }), with the messages written directly: the
  // generic walk costs ~2 µs a message (keys listed, sorted, filtered), 60 ms for 30,000 tiny ones
  const material = `{"messages":[${request.messages.map(messageJson).join(',')}],"model":${JSON.stringify(request.model)},"params":${canonicalJson(request.params)},"tenant":${JSON.stringify(tenant)}}`;
  return `${tenant}.${createHash('sha256').update(material, 'utf8').digest('hex')}`;
}

/** canonicalJson of the normalized message { role, content, name }: keys sorted, no name when unset. */
function messageJson(m: ChatMessage): string {
  const name = m.name === undefined ? '' : `"name":${JSON.stringify(m.name)},`;
  return `{"content":${JSON.stringify(m.content.trim().replace(/\s+/g, ' '))},${name}"role":${JSON.stringify(m.role)}}`;
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
