import type { AnyEvent, SluiceConfig } from '@sluice/contracts';
import { wholeAnswer } from './answer.js';
import { startAttempts, type AttemptOutcome, type Invocation, type Next } from './attempts.js';
import { step } from './step.js';
import type { LineResult, QueuedLine } from './upstream-batch.js';

/** How one line of an upstream batch ends: the attempt's events, then the terminal event and the client's reply. */
export interface LineEnd {
  events: AnyEvent[];
  conclude: Extract<Next, { kind: 'conclude' }>;
}

/**
 * A line's result from the upstream batch as the invoker would have ended the call: run through
 * the attempt step (step.ts) as one attempt on the line's deployment, so its invoke.attempted,
 * chat.completed or chat.failed and the reply are the very ones a direct call makes (the answer's
 * id `chatcmpl-<requestId>`, cut to fit max_payload, the upstream's error passed on). An answer
 * without usage fails the line (Sluice bills no guess). `latencyMs` is the upstream batch's run
 * time. Pure; the circuit changes the step asks for are dropped (a batch's lines say nothing of
 * the deployment's interactive health).
 */
export function concludeLine(line: QueuedLine, result: LineResult, config: SluiceConfig, maxPayload: number, now: number, latencyMs: number): LineEnd {
  const inv: Invocation = {
    event: line.event,
    delivery: {},
    settings: config.invoker,
    deployments: config.deployments,
    models: config.models,
    maxPayload,
    random: () => 0,
  };
  const first = step(inv, startAttempts(inv), { kind: 'start' }, now);
  if (first.next.kind === 'conclude') return { events: first.events, conclude: first.next };
  const s = step(inv, first.state, outcomeOf(line, result, latencyMs), now);
  if (s.next.kind !== 'conclude') throw new Error(`an upstream batch line did not conclude (${s.next.kind})`);
  return { events: [...first.events, ...s.events], conclude: s.next };
}

function outcomeOf(line: QueuedLine, result: LineResult, latencyMs: number): AttemptOutcome {
  const { requestId } = line.event;
  if (result.kind === 'answered') {
    try {
      return { kind: 'answered', answer: { status: result.status, ...wholeAnswer(line.event.data.ctx.request.endpoint, requestId, result.body) }, latencyMs };
    } catch (e) {
      return { kind: 'failed', failure: { kind: 'protocol', message: e instanceof Error ? e.message : String(e), retryable: false }, latencyMs };
    }
  }
  const status = result.status !== undefined ? { status: result.status } : {};
  const upstream = result.upstream !== undefined ? { upstream: result.upstream } : {};
  return {
    kind: 'failed',
    failure: { kind: result.status !== undefined ? 'status' : 'protocol', message: result.message, retryable: false, ...status, ...upstream },
    latencyMs,
  };
}
