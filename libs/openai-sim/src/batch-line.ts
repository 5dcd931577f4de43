import { countServed, planChatAnswer, planResponseAnswer } from './api.js';
import type { Answer } from './answer.js';
import type { BatchEndpoint } from './batch-input.js';
import { embeddingsBody, planEmbeddings } from './embeddings.js';
import { type ApiError, isApiError } from './errors.js';
import type { SimState } from './state.js';

/** What one batch line was answered with: the HTTP status and body the endpoint would have sent, and its tokens (0 when refused). */
export interface LineAnswer {
  statusCode: number;
  body: object;
  promptTokens: number;
  completionTokens: number;
}

/**
 * Answers one batch request line with the same logic as the direct route, counted like a direct
 * call (completions, tokens, embeddings or errors) and in `batchLines`. Batch lines skip rate
 * limits, faults and latency: OpenAI runs batches against a separate quota, and the batch's own
 * pace is `batchDelayMs`. A `stream: true` line is answered whole, since a file holds no stream.
 */
export function answerBatchLine(state: SimState, endpoint: BatchEndpoint, body: Record<string, unknown>): LineAnswer {
  state.stats.batchLines++;
  switch (endpoint) {
    case '/v1/chat/completions':
      return served(state, planChatAnswer(state, body));
    case '/v1/responses':
      return served(state, planResponseAnswer(state, body));
    case '/v1/embeddings': {
      const plan = planEmbeddings(body, state.modelSet);
      if (isApiError(plan)) return refused(state, plan);
      state.stats.embeddings++;
      state.stats.embeddingTokens += plan.promptTokens;
      return { statusCode: 200, body: embeddingsBody(plan), promptTokens: plan.promptTokens, completionTokens: 0 };
    }
    default: {
      const _exhaustive: never = endpoint;
      return _exhaustive;
    }
  }
}

function served(state: SimState, planned: Answer | ApiError): LineAnswer {
  if (isApiError(planned)) return refused(state, planned);
  countServed(state, planned);
  return { statusCode: 200, body: planned.body(), promptTokens: planned.promptTokens, completionTokens: planned.completionTokens };
}

function refused(state: SimState, err: ApiError): LineAnswer {
  state.stats.errors++;
  return { statusCode: err.status, body: err.body, promptTokens: 0, completionTokens: 0 };
}
