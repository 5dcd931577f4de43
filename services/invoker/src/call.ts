import { performance } from 'node:perf_hooks';
import type { Candidate, ChatReply, Deployment, SluiceEvent } from '@sluice/contracts';
import type { AttemptOutcome } from './attempts.js';
import { classifyError } from './retry.js';
import { callUpstream, type ClientPool } from './upstream.js';

/** What one attempt needs besides the request: the clients, the reply inbox and the clock. */
export interface CallDeps {
  clients: ClientPool;
  reply: (replyTo: string | undefined, reply: ChatReply) => void;
  now: () => number;
}

/**
 * One attempt on one candidate: the upstream call, each streamed delta forwarded to the client as
 * it arrives, and the result (never a throw) for the next step. A failure after the first
 * forwarded delta is marked `partial`: the client has seen part of an answer, so nothing may retry.
 */
export async function attemptCall(deps: CallDeps, event: SluiceEvent<'chat.routed'>, candidate: Candidate, deployment: Deployment): Promise<AttemptOutcome> {
  const { ctx, maxTokens } = event.data;
  const { requestId } = event;
  let forwarded = false;
  const started = performance.now();
  const latency = () => Math.round((performance.now() - started) * 10) / 10;
  const model = deployment.upstreamModel ?? candidate.model;
  try {
    const answer = await callUpstream({
      client: deps.clients.get(candidate.deployment, deployment),
      model,
      idempotencyKey: idempotencyKey(requestId, candidate.deployment, model),
      request: ctx.request,
      ...(maxTokens !== undefined ? { maxTokens } : {}),
      idleTimeoutMs: deployment.timeoutMs,
      deadline: ctx.deadline,
      now: deps.now,
      onDelta: (content) => {
        deps.reply(ctx.replyTo, { requestId, model: candidate.model, chunk: forwarded ? { content } : { content, role: 'assistant' } });
        forwarded = true;
      },
    });
    return { kind: 'answered', answer, latencyMs: latency() };
  } catch (e) {
    const failure = classifyError(e, deps.now());
    return { kind: 'failed', failure: forwarded ? { ...failure, partial: true } : failure, latencyMs: latency() };
  }
}

/**
 * One key per request, deployment and model: the body sent for them is the same on every
 * delivery (it comes from the chat.routed event), as an idempotency key requires. Retries after a
 * failure reuse it, which is right: upstreams keep only answers served in full.
 */
function idempotencyKey(requestId: string, deployment: string, model: string): string {
  return `sluice:${requestId}:${deployment}:${model}`;
}
