import { performance } from 'node:perf_hooks';
import type { ResultMark } from '@sluice/bus';
import type { Candidate, ChatReply, Deployment, SluiceEvent, Variant } from '@sluice/contracts';
import { streamReader } from './answer.js';
import type { AttemptOutcome } from './attempts.js';
import { startGenAiCall } from './genai.js';
import { outgoing } from './outgoing.js';
import type { CallResult } from './observe-limits.js';
import { CallCancelled, classifyError } from './retry.js';
import { callUpstream, type ClientPool } from './upstream.js';

/** What one attempt needs besides the request: the clients, the reply inbox and the clock. */
export interface CallDeps {
  clients: ClientPool;
  /** Sends a reply (call.ts sends only chunks; the mark is for the final answer, invoke.ts). */
  reply: (replyTo: string | undefined, reply: ChatReply, mark?: ResultMark) => void;
  now: () => number;
  /** Hears each call's status and x-ratelimit-* headers (observe-limits.ts). */
  observe?: (deployment: string, requestId: string, result: CallResult) => void;
}

/** One request as the attempts send it: the routed event, the client's body, the client's cancel. */
export interface CallInput {
  event: SluiceEvent<'chat.routed'>;
  body: Record<string, unknown>;
  cancel: AbortSignal;
  /** ms the request waited in its lane: sent with the first chunk, for the `x-sluice-queue-ms` header. */
  queuedMs?: number;
  /** The request's canary variant (outgoing.ts `variantOf`): its system message and sampling params are applied to the body. */
  variant?: Variant;
}

/**
 * One attempt on one candidate: the upstream call with the client's body (Sluice's decisions
 * applied, outgoing.ts), each streamed chunk forwarded to the client as it arrives, and the
 * result (never a throw) for the next step. A failure after the first forwarded chunk is marked
 * `partial`: the client has seen part of an answer, so nothing may retry. A cancel ends the call
 * at once and reports what was streamed, to be billed. The call is a `chat {model}` client span
 * and the gen_ai.client.* metrics' points (genai.ts).
 */
export async function attemptCall(deps: CallDeps, input: CallInput, candidate: Candidate, deployment: Deployment): Promise<AttemptOutcome> {
  const { event, body, cancel } = input;
  const { ctx, maxTokens } = event.data;
  const { requestId } = event;
  const { endpoint } = ctx.request;
  let forwarded = false;
  const started = performance.now();
  const latency = () => Math.round((performance.now() - started) * 10) / 10;
  const model = deployment.upstreamModel ?? candidate.model;
  const request = outgoing(endpoint, body, {
    model,
    stream: ctx.request.stream,
    ...(maxTokens !== undefined ? { maxTokens } : {}),
    ...(input.variant ? { variant: input.variant } : {}),
  });
  const reader = request.stream ? streamReader(endpoint, requestId, request.addedUsage) : undefined;
  const genAi = startGenAiCall({ endpoint, model, deployment: candidate.deployment, target: deployment, requestId, tenant: event.tenant });
  try {
    const answer = await genAi.run(() =>
      callUpstream({
        client: deps.clients.get(candidate.deployment, deployment),
        post: deps.clients.post,
        endpoint,
        requestId,
        request,
        idempotencyKey: idempotencyKey(requestId, candidate.deployment, model),
        idleTimeoutMs: deployment.timeoutMs,
        deadline: ctx.deadline,
        now: deps.now,
        cancel,
        ...(reader ? { reader } : {}),
        forward: (chunk) => {
          // the first chunk carries the limits ingress sends as headers with it
          const limits = !forwarded && ctx.rateLimit !== undefined ? { rateLimit: ctx.rateLimit } : {};
          const queue = !forwarded && input.queuedMs !== undefined ? { queueMs: input.queuedMs } : {};
          if (!forwarded) genAi.firstChunk();
          deps.reply(ctx.replyTo, { requestId, model: candidate.model, chunk, ...limits, ...queue });
          forwarded = true;
        },
      }),
    );
    genAi.answered(answer);
    deps.observe?.(candidate.deployment, requestId, answer);
    return { kind: 'answered', answer, latencyMs: latency(), sent: request.changes };
  } catch (e) {
    if (e instanceof CallCancelled) {
      genAi.cancelled();
      return { kind: 'cancelled', streamed: reader?.streamed() ?? { text: '' }, latencyMs: latency() };
    }
    const failure = classifyError(e, deps.now());
    genAi.failed(failure);
    deps.observe?.(candidate.deployment, requestId, failure);
    return { kind: 'failed', failure: forwarded ? { ...failure, partial: true } : failure, latencyMs: latency(), sent: request.changes };
  }
}

/**
 * One key per request, deployment and model: the body sent for them is the same on every
 * delivery (the client's body from chat.requested, with the same decisions applied), as an
 * idempotency key requires. Retries after a failure reuse it, which is right: upstreams keep
 * only answers served in full.
 */
function idempotencyKey(requestId: string, deployment: string, model: string): string {
  return `sluice:${requestId}:${deployment}:${model}`;
}
