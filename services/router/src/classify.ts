import type { Endpoint, StaticAnswer } from '@sluice/contracts';

/** The category level 3 chose for a question, its answer, and the keywords that chose it (config spelling, config order). */
export interface Classified {
  category: string;
  answer: string;
  matched: string[];
}

/**
 * Only the start of a long turn is read: a question's subject is in its first lines, and this
 * bounds the classifier at (keywords x 10k characters) on a pasted document of megabytes.
 */
const MAX_CLASSIFIED_CHARS = 10_000;

interface Compiled {
  answer: StaticAnswer;
  keywords: { word: string; pattern: RegExp }[];
}

// the config object is replaced on every change, so its array is a sound cache key
const compiledByConfig = new WeakMap<readonly StaticAnswer[], Compiled[]>();

/**
 * A keyword or phrase as a whole-word, case-insensitive pattern: letters, digits and `_` may not
 * touch it on either side (Unicode-aware, unlike `\b`), and a space in a phrase matches any run of
 * white space ("reset  my\npassword" matches "reset my password"). No nested repetition: linear.
 */
function wholeWord(word: string): RegExp {
  const body = word
    .trim()
    .split(/\s+/)
    .map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('\\s+');
  return new RegExp(`(?<![\\p{L}\\p{N}_])${body}(?![\\p{L}\\p{N}_])`, 'iu');
}

function compiled(answers: readonly StaticAnswer[]): Compiled[] {
  let c = compiledByConfig.get(answers);
  if (!c) {
    c = answers.map((answer) => ({ answer, keywords: [...new Set(answer.keywords)].map((word) => ({ word, pattern: wholeWord(word) })) }));
    compiledByConfig.set(answers, c);
  }
  return c;
}

/**
 * Level 3's cheap classifier: the category whose keywords (words or phrases, whole words,
 * case-insensitive) the text contains most of, counted once each; a tie goes to the category
 * first in config order; undefined when none matches (the caller answers `staticFallback`).
 * Reads the first 10,000 characters. Patterns are compiled once per config.
 *
 * @example
 * classify('How do I get a refund?', [{ category: 'billing', keywords: ['refund', 'invoice'], answer: 'See /billing.' }])
 * // { category: 'billing', answer: 'See /billing.', matched: ['refund'] }
 */
export function classify(text: string, answers: readonly StaticAnswer[]): Classified | undefined {
  const head = text.length > MAX_CLASSIFIED_CHARS ? text.slice(0, MAX_CLASSIFIED_CHARS) : text;
  let best: Classified | undefined;
  for (const { answer, keywords } of compiled(answers)) {
    const matched = keywords.filter((k) => k.pattern.test(head)).map((k) => k.word);
    if (matched.length > (best?.matched.length ?? 0)) best = { category: answer.category, answer: answer.answer, matched };
  }
  return best;
}

/**
 * The text of the last turn the user wrote: the last `user` message of a chat (whatever follows
 * it: a tool result, an assistant prefill), or of a Responses `input` (a string input is one).
 * Text parts only (`text`, `input_text`, joined by newlines); undefined for an embedding, a body
 * without a user turn, or a turn with no text. Never throws.
 *
 * @example
 * lastUserTurn('chat.completions', { messages: [{ role: 'system', content: 'Be brief' }, { role: 'user', content: 'Refund?' }] }) // 'Refund?'
 */
export function lastUserTurn(endpoint: Endpoint, body: unknown): string | undefined {
  if (!isRecord(body) || endpoint === 'embeddings') return undefined;
  const turns: unknown = endpoint === 'chat.completions' ? body.messages : body.input;
  if (typeof turns === 'string') return endpoint === 'responses' ? turns : undefined;
  if (!Array.isArray(turns)) return undefined;
  for (let i = turns.length - 1; i >= 0; i--) {
    const t: unknown = turns[i];
    if (isRecord(t) && t.role === 'user' && (t.type === undefined || t.type === 'message')) return textOf(t.content);
  }
  return undefined;
}

function textOf(content: unknown): string | undefined {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return undefined;
  const texts: string[] = [];
  for (const part of content) {
    if (isRecord(part) && (part.type === 'text' || part.type === 'input_text') && typeof part.text === 'string') texts.push(part.text);
  }
  return texts.length > 0 ? texts.join('\n') : undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
