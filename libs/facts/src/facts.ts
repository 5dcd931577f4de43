import { countMessages, countMessagesAsync, type MessageTokens } from '@sluice/tokens';
import { walkChat } from './chat.js';
import { NO_COMPLEXITY, scoreComplexity, type Complexity } from './complexity.js';
import { walkEmbeddings } from './embeddings.js';
import { walkResponses } from './responses.js';
import { count, type Json } from './shapes.js';
import { Tally } from './tally.js';

/** The OpenAI endpoints whose bodies Sluice reads facts from. */
export type Endpoint = 'chat.completions' | 'responses' | 'embeddings';

/** What later stages need to know of a body, computed once at ingress. */
export interface BodyFacts {
  /**
   * Prompt tokens as the upstream counts them (o200k_base): text of every message and part,
   * message framing, tool/function definitions, images, audio. An estimate where OpenAI
   * publishes no formula (tool definitions, files, unseen images): see the package's README.
   */
  promptTokens: number;
  /** What the client caps output at: chat max_completion_tokens ?? max_tokens; responses max_output_tokens; undefined when unset; embeddings 0. */
  maxOutputTokens?: number;
  /** Choices the upstream will write: chat `n` (default 1), else 1. */
  choices: number;
  /** Image parts seen. */
  images: number;
  /** Audio parts seen. */
  audio: number;
  complexity: Complexity;
}

/** Output allowance, in tokens per choice, when the client sets no cap. */
export const DEFAULT_OUTPUT_TOKENS = 256;

/**
 * The facts of an OpenAI request body, counted on this thread (linear in the body's size; a
 * handler on an event loop uses `bodyFactsAsync`). The body is not validated: a field of the
 * wrong shape counts as its JSON text or is skipped, never throws.
 *
 * @example
 * bodyFacts('chat.completions', { model: 'auto', messages: [{ role: 'user', content: 'hello world' }] })
 * // { promptTokens: 9, maxOutputTokens: undefined, choices: 1, images: 0, audio: 0, complexity: { score: 0, ... } }
 */
export function bodyFacts(endpoint: Endpoint, body: Json): BodyFacts {
  const tally = walk(endpoint, body);
  return facts(endpoint, body, tally, countMessages(tally.texts));
}

/**
 * `bodyFacts`, with a long body's text (over @sluice/tokens' INLINE_MAX_CHARS) counted on a
 * worker thread, off the event loop. Same result as `bodyFacts`.
 *
 * @example
 * const facts = await bodyFactsAsync('responses', { model: 'gpt-4o', input: 'hello world' });
 */
export async function bodyFactsAsync(endpoint: Endpoint, body: Json): Promise<BodyFacts> {
  const tally = walk(endpoint, body);
  return facts(endpoint, body, tally, await countMessagesAsync(tally.texts));
}

/**
 * Tokens a request may use, for rate limits: its prompt plus, for each choice, its output cap
 * or DEFAULT_OUTPUT_TOKENS.
 *
 * @example
 * estimatedTokens({ promptTokens: 100, maxOutputTokens: undefined, choices: 2 }) // 612
 */
export function estimatedTokens(f: Pick<BodyFacts, 'promptTokens' | 'maxOutputTokens' | 'choices'>): number {
  return f.promptTokens + f.choices * (f.maxOutputTokens ?? DEFAULT_OUTPUT_TOKENS);
}

function walk(endpoint: Endpoint, body: Json): Tally {
  const tally = new Tally();
  switch (endpoint) {
    case 'chat.completions':
      walkChat(body, tally);
      break;
    case 'responses':
      walkResponses(body, tally);
      break;
    case 'embeddings':
      walkEmbeddings(body, tally);
      break;
    default: {
      const _exhaustive: never = endpoint;
      return _exhaustive;
    }
  }
  return tally;
}

function facts(endpoint: Endpoint, body: Json, tally: Tally, counts: MessageTokens[]): BodyFacts {
  let promptTokens = tally.fixed;
  let contentTokens = 0;
  for (const [i, c] of counts.entries()) {
    promptTokens += c.content + c.name;
    if (tally.isContent[i]) contentTokens += c.content;
  }
  const shared = { promptTokens, images: tally.images, audio: tally.audio };
  switch (endpoint) {
    case 'chat.completions':
      return {
        ...shared,
        maxOutputTokens: count(body.max_completion_tokens) ?? count(body.max_tokens),
        choices: Number.isInteger(body.n) && (body.n as number) >= 1 ? (body.n as number) : 1,
        complexity: scoreComplexity(contentTokens, tally.turns, tally.userTexts),
      };
    case 'responses':
      return {
        ...shared,
        maxOutputTokens: count(body.max_output_tokens),
        choices: 1,
        complexity: scoreComplexity(contentTokens, tally.turns, tally.userTexts),
      };
    case 'embeddings':
      return { ...shared, maxOutputTokens: 0, choices: 1, complexity: { ...NO_COMPLEXITY, keywords: [] } };
    default: {
      const _exhaustive: never = endpoint;
      return _exhaustive;
    }
  }
}
