import { countMessages, countMessagesAsync, type MessageTokens } from '@sluice/tokens';
import type { ChatRequest } from '@sluice/contracts';

/** Completion allowance when a request sets no max_tokens. */
export const DEFAULT_COMPLETION_TOKENS = 256;

type Estimated = Pick<ChatRequest, 'messages' | 'params'>;

/**
 * Tokens a request may use: its prompt in o200k_base (the gpt-4o family's encoding) with
 * OpenAI's chat framing (+4 per message, +3 to prime the reply), plus the completion
 * allowance. Deterministic, so it can be recomputed from the request after completion.
 * Counting is linear in the prompt's length (@sluice/tokens); a handler on the event loop uses
 * `estimateTokensAsync`, which counts a long prompt on a worker thread.
 *
 * @example
 * estimateTokens({ ...request, params: { max_tokens: 100 } }) // prompt tokens + 100
 */
export function estimateTokens(request: Estimated): number {
  return fromCounts(countMessages(request.messages), request);
}

/** `estimateTokens`, with a long prompt counted off the event loop. */
export async function estimateTokensAsync(request: Estimated): Promise<number> {
  return fromCounts(await countMessagesAsync(request.messages), request);
}

function fromCounts(counts: MessageTokens[], request: Estimated): number {
  return framed(counts) + (request.params.max_tokens ?? DEFAULT_COMPLETION_TOKENS);
}

function framed(counts: MessageTokens[]): number {
  let n = 3;
  for (const c of counts) n += 4 + c.content + c.name;
  return n;
}
