/** How hard a request looks, in [0, 1], and the signals that made the score (for the reason). */
export interface Complexity {
  score: number;
  /** Tokens of the messages' text content, every role (no framing, tool definitions or images). */
  promptTokens: number;
  /** User messages (chat) or user items (responses; a string input is one). */
  turns: number;
  /** Whether what the user wrote has a code fence. */
  code: boolean;
  /** Distinct hard words found in what the user wrote, lower case, sorted. */
  keywords: string[];
}

/**
 * Asks that tend to need a stronger model. Matched at a word start with any ending
 * ("refactoring"), only in what the user wrote: a system prompt is usually boilerplate and
 * would push every request of an app up a tier.
 */
const HARD_WORDS = [
  'analyze',
  'analyse',
  'prove',
  'proof',
  'step by step',
  'refactor',
  'compare',
  'explain why',
  'derive',
  'optimize',
  'optimise',
  'debug',
  'trade-off',
  'tradeoff',
  'architecture',
  'algorithm',
  'evaluate',
  'critique',
  'reason about',
] as const;
const hardWord = new RegExp(`\\b(${HARD_WORDS.map((w) => w.replace(/[-\s]/g, (c) => (c === '-' ? '-' : '\\s+'))).join('|')})\\w*`, 'gi');

// Weights sum to 1. Length saturates at 2,000 prompt tokens, turns at 9 user turns, hard words
// at 3 distinct ones: beyond that more of the same says little.
const WEIGHT = { length: 0.35, turns: 0.15, code: 0.2, perKeyword: 0.1 } as const;
const LENGTH_SATURATION = 2_000;
const TURN_SATURATION = 8;
const KEYWORD_SATURATION = 3;

/** The complexity of nothing (an embeddings request). */
export const NO_COMPLEXITY: Complexity = { score: 0, promptTokens: 0, turns: 0, code: false, keywords: [] };

/**
 * A cheap, explainable heuristic: prompt length in tokens, number of user turns, code
 * fences, and words that ask for analysis in what the user wrote. Deterministic, so the same
 * request always lands in the same tier; linear in the texts' length (the keyword pattern has
 * no nested repetition). Moved from the router's complexity.ts, unchanged in its scoring.
 *
 * @example
 * scoreComplexity(12, 1, ['Refactor this:\n```ts\n...\n```']).score // 0.3
 */
export function scoreComplexity(promptTokens: number, turns: number, userTexts: readonly string[]): Complexity {
  let code = false;
  const found = new Set<string>();
  for (const t of userTexts) {
    if (t.includes('```')) code = true;
    for (const match of t.matchAll(hardWord)) found.add(match[1]!.toLowerCase().replace(/\s+/g, ' '));
  }
  const keywords = [...found].sort();
  const raw =
    WEIGHT.length * Math.min(1, promptTokens / LENGTH_SATURATION) +
    WEIGHT.turns * Math.min(1, Math.max(0, turns - 1) / TURN_SATURATION) +
    (code ? WEIGHT.code : 0) +
    WEIGHT.perKeyword * Math.min(KEYWORD_SATURATION, keywords.length);
  return { score: Math.round(Math.min(1, raw) * 100) / 100, promptTokens, turns, code, keywords };
}

/**
 * A one-line reason for a log or an event.
 *
 * @example
 * describeComplexity({ score: 0.42, promptTokens: 812, turns: 3, code: true, keywords: ['refactor'] })
 * // '0.42 (812 tokens, 3 turns, code, refactor)'
 */
export function describeComplexity(c: Complexity): string {
  const signals = [`${c.promptTokens} tokens`, `${c.turns} turn${c.turns === 1 ? '' : 's'}`, ...(c.code ? ['code'] : []), ...c.keywords];
  return `${c.score.toFixed(2)} (${signals.join(', ')})`;
}
