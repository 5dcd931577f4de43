import { createHash } from 'node:crypto';
import type { Answer, Candidate, Endpoint, SluiceConfig } from '@sluice/contracts';
import { orderBlock } from '@sluice/invoker/whatif';
import { estimateTokens } from '@sluice/limiter/whatif';
import { upstreamEnd, type RecordedRequest } from './record.js';

/** Where a routed request's upstream call goes under the candidate, and what it answers. */
export interface UpstreamCall {
  model: string;
  deployment: string;
  /** What the answer is: recorded for this request, or made up (`estimated`) from its key's recorded answer or the token estimate. */
  answer: Answer;
  estimated: boolean;
  outcome: 'completed' | 'cancelled' | 'failed';
  /** Epoch ms the call ends: as recorded, or at once when it was not recorded. */
  endsAt: number;
  /** The code of a recorded failure. */
  code?: string;
}

/** How a request's deployment is chosen: kept from the recording where the candidate still routes there, or drawn for every request. */
export type BalanceMode = 'recorded' | 'drawn';

/**
 * The upstream call of a routed request. Upstream outcomes are as recorded: a request that
 * completed (or was cancelled, or failed) does so again, with its recorded tokens, on the
 * candidate's route: by the model that answered it when the candidate's candidates still have
 * that model, else by the first candidate's model. Its deployment is the recorded one when it is
 * among that model's candidates (`recorded`), else drawn by the invoker's own balancing
 * (`orderBlock`: weights, stickiness, health as recorded) with a random seeded by the request
 * id. A request the recording never sent upstream is answered with its key's recorded answer,
 * else with the limiter's token estimate (prompt tokens and `choices` × its output cap).
 * A degraded route's max_tokens caps the completion tokens.
 */
export function upstreamCall(
  r: RecordedRequest,
  candidates: readonly Candidate[],
  maxTokens: number | undefined,
  config: SluiceConfig,
  known: { answerOf: (key: string) => Answer | undefined; healthy: (deployment: string) => boolean; balance: BalanceMode },
): UpstreamCall {
  const end = upstreamEnd(r);
  const answered = end?.type === 'chat.completed' ? end.data.answer.model : end?.type === 'chat.cancelled' ? end.data.model : undefined;
  const model = answered !== undefined && candidates.some((c) => c.model === answered) ? answered : candidates[0]!.model;
  const block = candidates.filter((c) => c.model === model).map((c) => c.deployment);
  const recordedDeployment = end && end.type !== 'chat.failed' ? end.data.deployment : undefined;
  const deployment =
    known.balance === 'recorded' && recordedDeployment !== undefined && block.includes(recordedDeployment)
      ? recordedDeployment
      : draw(block, model, r, config, known.healthy);
  const { request } = r.requested.data.ctx;
  let answer: Answer;
  let estimated = false;
  if (end?.type === 'chat.completed') answer = { ...end.data.answer, model };
  else if (end?.type === 'chat.cancelled') answer = { model, body: null, usage: end.data.usage };
  else {
    const same = request.cacheKey !== undefined ? known.answerOf(request.cacheKey) : undefined;
    answer = same ? { ...same, model } : { model, body: wholeBody(request.endpoint), usage: estimatedUsage(request) };
    estimated = true;
  }
  if (maxTokens !== undefined) {
    const cap = request.choices * maxTokens;
    const { usage } = answer;
    if (usage.completion_tokens > cap) answer = { ...answer, usage: { ...usage, completion_tokens: cap, total_tokens: usage.prompt_tokens + cap } };
  }
  const outcome = end?.type === 'chat.failed' ? 'failed' : end?.type === 'chat.cancelled' ? 'cancelled' : 'completed';
  const endsAt = end?.at ?? r.requested.data.ctx.receivedAt;
  return { model, deployment, answer, estimated, outcome, endsAt, ...(end?.type === 'chat.failed' ? { code: end.data.code } : {}) };
}

/** The first healthy deployment of the invoker's order for the block (the first at all when none is healthy). */
function draw(block: readonly string[], model: string, r: RecordedRequest, config: SluiceConfig, healthy: (d: string) => boolean): string {
  const m = config.models[model];
  const options = block.map((deployment) => ({
    deployment,
    weight: config.deployments[deployment]?.weight ?? 1,
    // no latency is known in a replay: every pair ties and the weights decide (p2c's first draw)
    latency: 'probing' as const,
    healthy: healthy(deployment),
  }));
  const policy = { balance: m?.balance ?? 'weighted', sticky: m?.sticky ?? false, user: r.requested.data.ctx.request.user, model };
  const { order } = orderBlock(options, policy, seeded(r.requestId));
  return block[order.find((i) => options[i]!.healthy) ?? order[0]!]!;
}

/** The limiter's estimate as an answer's tokens: the prompt as ingress counted it, the output cap (or 256) per choice. */
function estimatedUsage(request: RecordedRequest['requested']['data']['ctx']['request']): Answer['usage'] {
  const total = estimateTokens(request);
  const completion = request.endpoint === 'embeddings' ? 0 : total - request.promptTokens;
  return { prompt_tokens: request.promptTokens, completion_tokens: completion, total_tokens: request.promptTokens + completion };
}

/** A made-up answer the cache's policy counts as whole (its text is never read). */
function wholeBody(endpoint: Endpoint): unknown {
  if (endpoint === 'embeddings') return { object: 'list', data: [] };
  if (endpoint === 'responses') return { object: 'response', status: 'completed', output: [] };
  return { object: 'chat.completion', choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: '' } }] };
}

/** A random in [0, 1) from the request id (mulberry32): the same request draws the same deployment on every run. */
function seeded(requestId: string): () => number {
  let s = createHash('sha256').update(requestId).digest().readUInt32BE(0);
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
