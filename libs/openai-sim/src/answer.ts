import { type ChatPlan, completionBody } from './completion.js';
import { type Frame, streamFrames } from './stream.js';

/**
 * An answer planned in full before its first byte is sent: what a route
 * serves (whole or streamed), charges to the rate limits, counts in the stats
 * and replays under an Idempotency-Key. Chat completions and Responses are both
 * served through this one shape, so faults, limits, latency, idempotency and
 * abort counting behave the same for both.
 */
export interface Answer {
  model: string;
  stream: boolean;
  promptTokens: number;
  completionTokens: number;
  /** The JSON body of the whole answer. */
  body(): object;
  /** The SSE frames of the streamed answer. */
  frames(): Frame[];
  /** What serving it in full changes besides the shared counters (a Response is stored); not run on replays. */
  served?(): void;
}

/** A chat completion plan as an {@link Answer} under the given id. */
export function chatAnswer(plan: ChatPlan, id: string, created: number): Answer {
  return {
    model: plan.model,
    stream: plan.stream,
    promptTokens: plan.promptTokens,
    completionTokens: plan.completionTokens,
    body: () => completionBody(plan, id, created),
    frames: () => streamFrames(plan, id, created),
  };
}
