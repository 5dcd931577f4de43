import { countText as countLinear } from '@sluice/tokens';

/** Fixed overhead per message and per request in the prompt-token formula. */
const TOKENS_PER_MESSAGE = 4;
const TOKENS_PER_REQUEST = 3;

// Benchmarks and tests resend the same system prompts and words endlessly, and
// BPE costs far more than a Map lookup. Bounded by entry count and entry size;
// clearing it wholesale when full is cruder than LRU but costs nothing per hit.
const CACHE_ENTRIES = 8192;
const CACHE_MAX_CHARS = 16_384;
const cache = new Map<string, number>();

/**
 * o200k_base (gpt-4o family) token count of a text, as the gateway counts it (@sluice/tokens):
 * exact for ordinary text, linear in the text's length whatever its shape, so a hostile prompt
 * (one 900 KB word) costs the simulator milliseconds, not minutes. Special tokens such as
 * "<|endoftext|>" count as the plain text they are, as the real API counts user text.
 */
export function countText(text: string): number {
  if (text.length === 0) return 0;
  if (text.length > CACHE_MAX_CHARS) return countLinear(text);
  let n = cache.get(text);
  if (n === undefined) {
    n = countLinear(text);
    if (cache.size >= CACHE_ENTRIES) cache.clear();
    cache.set(text, n);
  }
  return n;
}

/** The text of a message's `content`, whether a string or an array of parts. */
export function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let text = '';
  for (const part of content) {
    if (part !== null && typeof part === 'object' && typeof (part as { text?: unknown }).text === 'string') {
      text += (part as { text: string }).text;
    }
  }
  return text;
}

/**
 * prompt_tokens = Σ over messages (tokens(content) + 4) + 3.
 * Close to what OpenAI bills for plain chats, and cheap; names and tool
 * definitions are deliberately not counted; images and audio are counted
 * apart, by OpenAI's rules (media.ts).
 */
export function countPromptTokens(messages: readonly { role?: string; content?: unknown }[]): number {
  let total = TOKENS_PER_REQUEST;
  for (const m of messages) total += countText(contentText(m.content)) + TOKENS_PER_MESSAGE;
  return total;
}
