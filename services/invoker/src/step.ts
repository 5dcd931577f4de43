import { Errors, type ErrorCode } from '@sluice/contracts';
import type { AttemptOutcome, AttemptState, Invocation, Step } from './attempts.js';
import { recordFailure, recordNeutral, recordSuccess } from './circuit.js';
import { Draft } from './draft.js';
import { fitContent } from './fit.js';
import { afterFailure, countsAgainstDeployment, describe, exhaustedCode, pickCandidate } from './plan.js';
import { attemptSuffix } from './replay.js';
import type { Failure, Remaining } from './retry.js';
import type { UpstreamAnswer } from './upstream.js';

/**
 * The attempt loop of one request as a pure step: given where it stands and what the last call
 * did, the events to publish, the circuits to write back and what to do next (call a candidate,
 * wait, or conclude with chat.completed / chat.failed and the client's reply). Candidates are
 * tried in order, skipping open circuits, up to `maxAttemptsPerDeployment` each, with the backoff
 * and fallback rules of `afterFailure`; no attempt starts at or after the deadline.
 *
 * @example
 * const s = step(inv, startAttempts(inv), { kind: 'start' }, now);
 * // s.next: { kind: 'call', candidate: candidates[0], attempt: 1, suffix: 1 }
 */
export function step(inv: Invocation, state: AttemptState, outcome: AttemptOutcome, now: number): Step {
  const d = new Draft(inv, state, now);
  switch (outcome.kind) {
    case 'start':
    case 'waited':
      return callNext(d);
    case 'answered':
      return answered(d, outcome.answer, outcome.latencyMs);
    case 'failed':
      return failed(d, outcome.failure, outcome.latencyMs);
    default: {
      const _exhaustive: never = outcome;
      return _exhaustive;
    }
  }
}

/** The next call: the current candidate or the first usable one after it, unless the deadline passed. */
function callNext(d: Draft): Step {
  const { ctx, candidates } = d.inv.event.data;
  const { index, onCandidate, attempts, last } = d.state;
  if (d.now >= ctx.deadline) return fail(d, 'deadline_exceeded', Errors.deadline_exceeded.message, `deadline passed after ${attempts} attempts`);
  const pick = pickCandidate(candidates, index, d.circuitOf, d.inv.deployments, d.now, d.inv.settings);
  for (const skipped of pick.skipped) d.note(skipped);
  const candidate = candidates[pick.index];
  if (!candidate || !pick.circuit) {
    const code = exhaustedCode(d.now, ctx.deadline);
    const message = last
      ? `${Errors[code].message} Last error (${attempts} attempts): ${last.message}`
      : 'No upstream deployment is available for this request right now (circuits open); retry later.';
    return fail(d, code, message, `no candidate left after ${attempts} attempts`);
  }
  // taking the half-open trial is a write: other requests must see it taken
  d.settle(candidate.deployment, { circuit: pick.circuit });
  const attempt = attempts + 1;
  d.update({ index: pick.index, onCandidate: (pick.index === index ? onCandidate : 0) + 1, attempts: attempt });
  return d.done({ kind: 'call', candidate, attempt, suffix: attemptSuffix(d.inv.delivery, attempt) });
}

function answered(d: Draft, answer: UpstreamAnswer, latencyMs: number): Step {
  const { event, delivery, maxPayload } = d.inv;
  const { ctx, candidates, cacheKey } = event.data;
  const { attempts: attempt } = d.state;
  const candidate = candidates[d.state.index]!;
  d.settle(candidate.deployment, recordSuccess(d.circuitOf(candidate.deployment)));
  const base = { attempt, model: candidate.model, deployment: candidate.deployment, latencyMs };
  const what = `${describe(candidate)} answered ${answer.status} in ${latencyMs} ms${headroom(answer.remaining)}`;
  d.emit(d.stamp('invoke.attempted', what, { ...base, ok: true, status: answer.status }, attemptSuffix(delivery, attempt)));

  // billed in full whatever its size: an answer too large to carry is cut, never dropped
  const fitted = fitContent(answer.content, ctx, maxPayload);
  const message = { role: 'assistant' as const, content: fitted.content };
  const finishReason = fitted.truncatedFrom === undefined ? answer.finishReason : 'length';
  if (fitted.truncatedFrom !== undefined) d.note(`answer of ${fitted.truncatedFrom} characters cut to ${fitted.content.length} to fit NATS max_payload`);
  const completed = d.stamp('chat.completed', `answered by ${describe(candidate)} after ${attempt} attempt${attempt === 1 ? '' : 's'}`, {
    ctx,
    answer: { model: candidate.model, message, finishReason, usage: answer.usage },
    deployment: candidate.deployment,
    attempts: attempt,
    upstreamLatencyMs: latencyMs,
    ...(cacheKey !== undefined ? { cacheKey } : {}),
  });
  const reply = {
    requestId: event.requestId,
    model: candidate.model,
    message,
    finishReason,
    usage: answer.usage,
    cached: false,
    created: Math.floor(completed.at / 1000),
  };
  return d.done({ kind: 'conclude', terminal: completed, reply });
}

function failed(d: Draft, failure: Failure, latencyMs: number): Step {
  const { event, delivery, deployments, settings, random } = d.inv;
  const { ctx, candidates } = event.data;
  const { index, onCandidate, attempts: attempt } = d.state;
  const candidate = candidates[index]!;
  d.update({ last: failure });
  const circuit = d.circuitOf(candidate.deployment);
  d.settle(candidate.deployment, countsAgainstDeployment(failure) ? recordFailure(circuit, d.now, settings) : recordNeutral(circuit));
  const later = pickCandidate(candidates, index + 1, d.circuitOf, deployments, d.now, settings);
  const then = afterFailure(failure, { attemptOnCandidate: onCandidate, hasFallback: later.index >= 0, now: d.now, deadline: ctx.deadline, settings, random });

  const base = { attempt, model: candidate.model, deployment: candidate.deployment, latencyMs };
  const status = failure.status !== undefined ? { status: failure.status } : {};
  const suffix = attemptSuffix(delivery, attempt);
  const what = `${describe(candidate)} failed${failure.status !== undefined ? ` with ${failure.status}` : ` (${failure.kind})`} after ${latencyMs} ms${headroom(failure.remaining)}`;
  d.emit(d.stamp('invoke.attempted', what, { ...base, ok: false, ...status }, suffix));
  const retryAfter = failure.retryAfterMs !== undefined ? { retryAfterMs: failure.retryAfterMs } : {};
  const data = { ...base, ...status, error: failure.message, retryable: failure.retryable, ...retryAfter };
  d.emit(d.stamp('invoke.failed', `${failure.message}; next: ${then.kind} (${then.reason})`, data, suffix));

  switch (then.kind) {
    case 'retry':
      return d.done({ kind: 'wait', ms: then.delayMs });
    case 'next-candidate':
      d.note(`left ${describe(candidate)}: ${then.reason}`);
      d.update({ index: index + 1, onCandidate: 0 });
      return callNext(d);
    case 'fail':
      return fail(d, then.code, then.message, then.reason);
    default: {
      const _exhaustive: never = then;
      return _exhaustive;
    }
  }
}

function fail(d: Draft, code: ErrorCode, message: string, reason: string): Step {
  const { requestId, data } = d.inv.event;
  const { ctx } = data;
  const { status } = Errors[code];
  const failed = d.stamp('chat.failed', reason, {
    code,
    status,
    message,
    attempts: d.state.attempts,
    receivedAt: ctx.receivedAt,
    ...(ctx.replyTo !== undefined ? { replyTo: ctx.replyTo } : {}),
  });
  return d.done({ kind: 'conclude', terminal: failed, reply: { requestId, error: { code, message, status } } });
}

/** The upstream's rate-limit headroom, for the timeline (a proper event for it is a later step). */
function headroom(r: Remaining | undefined): string {
  const parts = [r?.requests !== undefined && `requests ${r.requests}`, r?.tokens !== undefined && `tokens ${r.tokens}`].filter(Boolean);
  return parts.length ? `; upstream remaining: ${parts.join(', ')}` : '';
}
