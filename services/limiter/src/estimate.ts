import { countTokens } from 'gpt-tokenizer/encoding/o200k_base';
import type { ChatRequest } from '@sluice/contracts';

/** Completion allowance when a request sets no max_tokens. */
export const DEFAULT_COMPLETION_TOKENS = 256;

// user text is data, not control: "<|endoftext|>" in a prompt is counted as plain text
// instead of throwing (the tokenizer's default)
const asText = { disallowedSpecial: new Set<string>() };

/**
 * Tokens a request may use: its prompt in o200k_base (the gpt-4o family's encoding) with
 * OpenAI's chat framing (+4 per message, +3 to prime the reply), plus the completion
 * allowance. Deterministic, so it can be recomputed from the request after completion.
 *
 * @example
 * estimateTokens({ ...request, params: { max_tokens: 100 } }) // prompt tokens + 100
 */
export function estimateTokens(request: Pick<ChatRequest, 'messages' | 'params'>): number {
  return promptTokens(request.messages) + (request.params.max_tokens ?? DEFAULT_COMPLETION_TOKENS);
}

export function promptTokens(messages: ChatRequest['messages']): number {
  let n = 3;
  for (const m of messages) {
    n += 4 + countTokens(m.content, asText);
    if (m.name) n += countTokens(m.name, asText);
  }
  return n;
}
