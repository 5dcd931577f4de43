import { countMessages } from '@sluice/tokens';
import type { ChatRequest } from '@sluice/contracts';

/** How hard a request looks, in [0, 1], and the signals that made the score (for the reason). */
export interface Complexity {
  score: number;
  promptTokens: number;
  turns: number;
  code: boolean;
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

/**
 * A cheap, explainable heuristic: prompt length in tokens, number of user turns, code
 * fences, and words that ask for analysis. Deterministic, so the same request always lands
 * in the same tier. Linear in the prompt's length; the prompt is counted with @sluice/tokens,
 * which remembers a count the handler already made off the event loop (`countMessagesAsync`).
 *
 * @example
 * complexity({ messages: [{ role: 'user', content: 'Refactor this:\n```ts\n...\n```' }] }).score // ≈ 0.3
 */
export function complexity(request: Pick<ChatRequest, 'messages'>): Complexity {
  let promptTokens = 0;
  let turns = 0;
  let code = false;
  const found = new Set<string>();
  const counts = countMessages(request.messages);
  for (const [i, m] of request.messages.entries()) {
    promptTokens += counts[i]!.content;
    if (m.role !== 'user') continue;
    turns++;
    if (m.content.includes('```')) code = true;
    for (const match of m.content.matchAll(hardWord)) found.add(match[1]!.toLowerCase().replace(/\s+/g, ' '));
  }
  const keywords = [...found].sort();
  const raw =
    WEIGHT.length * Math.min(1, promptTokens / LENGTH_SATURATION) +
    WEIGHT.turns * Math.min(1, Math.max(0, turns - 1) / TURN_SATURATION) +
    (code ? WEIGHT.code : 0) +
    WEIGHT.perKeyword * Math.min(KEYWORD_SATURATION, keywords.length);
  return { score: Math.round(Math.min(1, raw) * 100) / 100, promptTokens, turns, code, keywords };
}

/** "0.42 (812 tokens, 3 turns, code, refactor)" */
export function describeComplexity(c: Complexity): string {
  const signals = [`${c.promptTokens} tokens`, `${c.turns} turn${c.turns === 1 ? '' : 's'}`, ...(c.code ? ['code'] : []), ...c.keywords];
  return `${c.score.toFixed(2)} (${signals.join(', ')})`;
}
