import { createHash } from 'node:crypto';
import type { Endpoint } from '@sluice/contracts';
import { canonicalJson } from '@sluice/facts';

/**
 * Top-level fields that cannot change the answer (as for the exact key, libs/facts/src/key.ts):
 * left out of the conversation's context hash so they never split a partition.
 */
const IGNORED = new Set(['stream', 'stream_options', 'user', 'safety_identifier', 'store', 'metadata', 'prompt_cache_key', 'feature', 'priority']);

/** The part of a request the semantic cache compares by meaning, and what must match exactly. */
export interface SemanticParts {
  /** The last user turn's text: what is embedded and held to the threshold and the guard. */
  text: string;
  /**
   * SHA-256 hex of everything else: the endpoint, the namespace, the model asked for, the other
   * turns, the system message, tools, sampling and format parameters. Two requests share a
   * partition only when all of it is equal.
   */
  contextHash: string;
}

/** Why a request is looked up exactly only. */
export type Ineligible = { ineligible: string };

/**
 * Splits a request body into its semantic text (the last user turn) and the hash of everything
 * else, or says why it cannot be looked up by meaning: an embeddings request; a conversation whose
 * last turn is not the user's (a tool result, an assistant prefill); a turn with images, audio or
 * files (their meaning is not in the text); an empty turn, or one longer than `maxTextChars`
 * (bounding the embedding's cost and the guard's work). Linear in the body's size; never throws.
 *
 * @example
 * semanticParts('chat.completions', { model: 'auto', messages: [{ role: 'user', content: 'Turn on dark mode' }] }, undefined, 2000)
 * // { text: 'Turn on dark mode', contextHash: '9b1f…' }
 */
export function semanticParts(endpoint: Endpoint, body: unknown, namespace: string | undefined, maxTextChars: number): SemanticParts | Ineligible {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { ineligible: 'the body is not a JSON object' };
  const b = body as Record<string, unknown>;
  let text: string | undefined;
  let rest: Record<string, unknown>;
  if (endpoint === 'chat.completions') {
    const messages: unknown[] = Array.isArray(b.messages) ? b.messages : [];
    const last: unknown = messages[messages.length - 1];
    if (!isRecord(last) || last.role !== 'user') return { ineligible: 'the last message is not a user turn' };
    text = textOf(last.content);
    rest = { ...b, messages: [...messages.slice(0, -1), { ...last, content: null }] };
  } else if (endpoint === 'responses') {
    if (typeof b.input === 'string') {
      text = b.input;
      rest = { ...b, input: null };
    } else {
      const items: unknown[] = Array.isArray(b.input) ? b.input : [];
      const last: unknown = items[items.length - 1];
      if (!isRecord(last) || (last.type !== undefined && last.type !== 'message') || last.role !== 'user')
        return { ineligible: 'the last input item is not a user turn' };
      text = textOf(last.content);
      rest = { ...b, input: [...items.slice(0, -1), { ...last, content: null }] };
    }
  } else {
    return { ineligible: 'embeddings are cached exactly only' };
  }
  if (text === undefined) return { ineligible: 'the last user turn has more than text (images, audio or files)' };
  if (text.trim() === '') return { ineligible: 'the last user turn is empty' };
  if (text.length > maxTextChars) return { ineligible: `the last user turn is longer than ${maxTextChars} characters` };
  const kept: Record<string, unknown> = {};
  for (const k of Object.keys(rest)) if (!IGNORED.has(k)) kept[k] = rest[k];
  const contextHash = createHash('sha256')
    .update(canonicalJson({ endpoint, namespace: namespace ?? null, body: kept }), 'utf8')
    .digest('hex');
  return { text, contextHash };
}

/** A turn's text: a string, or text parts only (`text`, `input_text`) joined by newlines; undefined for any other part. */
function textOf(content: unknown): string | undefined {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return undefined;
  const parts: string[] = [];
  for (const part of content) {
    if (!isRecord(part) || (part.type !== 'text' && part.type !== 'input_text') || typeof part.text !== 'string') return undefined;
    parts.push(part.text);
  }
  return parts.join('\n');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
