import { billedPrice, Errors, settledContext, type BilledPrice, type ChatErrorReply, type ErrorCode, type UpstreamError } from '@sluice/contracts';
import type { AttemptOutcome, AttemptState, Invocation, Step } from './attempts.js';
import { cancelledUsage, type Streamed } from './cancels.js';
import { admit, type CircuitInput } from './circuit.js';
import { Draft } from './draft.js';
import { fitBody } from './fit.js';
import { afterFailure, countsAgainstDeployment, describe, exhaustedCode, pickCandidate } from './plan.js';
import { attemptSuffix } from './replay.js';
import type { Failure, Remaining } from './retry.js';
import type { UpstreamAnswer } from './upstream.js';

/**
 * The attempt loop of one request as a pure step: given where it stands and what the last call
 * did, the events to publish, what the call told of its deployment's circuit and what to do next (call a candidate,
 * wait, or conclude with chat.completed / chat.failed / chat.cancelled and the client's reply).
 * Candidates are tried in order, skipping open circuits, up to `maxAttemptsPerDeployment` each,
 * with the backoff and fallback rules of `afterFailure`; no attempt starts at or after the
 * deadline, and none after the client cancelled.
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
      noteSent(d, outcome.sent);
      return answered(d, outcome.answer, outcome.latencyMs);
    case 'failed':
      noteSent(d, outcome.sent);
      return failed(d, outcome.failure, outcome.latencyMs);
    case 'cancelled':
      return cancelled(d, outcome.streamed, outcome.latencyMs);
    case 'refused':
      return refused(d, outcome.reason);
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
    // a deployment paused by its upstream's 429 is waited for, as a retry after its Retry-After would be
    const resume = pauseEnd(d, index);
    if (resume !== undefined && resume < ctx.deadline) {
      d.note(`waiting ${resume - d.now} ms for the pause to end`);
      return d.done({ kind: 'wait', ms: resume - d.now });
    }
    if (resume !== undefined && !last) {
      const why = `every deployment left is paused by its upstream's Retry-After past the deadline`;
      return fail(d, 'rate_limit_exceeded', Errors.rate_limit_exceeded.message, why, { retryAfterMs: resume - d.now });
    }
    const code = exhaustedCode(d.now, ctx.deadline, last);
    const message = last
      ? `${Errors[code].message} Last error (${attempts} attempts): ${last.message}`
      : 'No upstream deployment is available for this request right now (circuits open); retry later.';
    // the upstream's 429 is passed on with its wait, so the client backs off as it asked
    const limited = code === 'rate_limit_exceeded' ? { upstream: last?.upstream, retryAfterMs: last?.retryAfterMs } : {};
    return fail(d, code, message, `no candidate left after ${attempts} attempts`, limited);
  }
  const attempt = attempts + 1;
  const suffix = attemptSuffix(d.inv.delivery, attempt);
  // a half-open trial slot is claimed by the interpreter (compare-and-set, across replicas) before the call
  const trial = admit(d.circuitOf(candidate.deployment), d.now, d.inv.settings).trial ? `${d.inv.event.requestId}:${suffix}` : undefined;
  d.update({ index: pick.index, onCandidate: (pick.index === index ? onCandidate : 0) + 1, attempts: attempt, trial });
  return d.done({ kind: 'call', candidate, attempt, suffix, ...(trial !== undefined ? { trial } : {}) });
}

/**
 * When the first of the candidates from `from` on that is only paused (429 Retry-After) would be
 * admitted again (epoch ms); undefined when none is paused, or each paused one is also open.
 */
function pauseEnd(d: Draft, from: number): number | undefined {
  let end: number | undefined;
  for (const { deployment } of d.inv.event.data.candidates.slice(from)) {
    if (!d.inv.deployments[deployment]) continue;
    const until = d.circuitOf(deployment).pausedUntil ?? 0;
    if (until > d.now && admit(d.circuitOf(deployment), until, d.inv.settings).allow) end = Math.min(end ?? until, until);
  }
  return end;
}

/**
 * The trial slot the last step chose was taken by another replica first: no call was made, so
 * the attempt is given back and the request goes on with the next candidate (not this one
 * again: a claim that cannot be written would otherwise be retried until the deadline).
 */
function refused(d: Draft, reason: string): Step {
  const { attempts, index } = d.state;
  d.note(`skipped ${describe(d.inv.event.data.candidates[index]!)}: trial call refused (${reason})`);
  d.update({ attempts: attempts - 1, index: index + 1, onCandidate: 0, trial: undefined });
  return callNext(d);
}

/**
 * What a failed call tells its deployment's circuit. A 429 is no failure: with Retry-After it
 * pauses the deployment for every replica, without it it says nothing (the retry backs off).
 * 5xx, timeouts, connection errors and our key refused count towards opening.
 */
function circuitInputOf(failure: Failure, trial: string | undefined): CircuitInput {
  if (failure.status === 429)
    return failure.retryAfterMs !== undefined ? { kind: 'paused', retryAfterMs: Math.max(0, failure.retryAfterMs), trial } : { kind: 'neutral', trial };
  return countsAgainstDeployment(failure) ? { kind: 'failure', trial } : { kind: 'neutral', trial };
}

function answered(d: Draft, answer: UpstreamAnswer, latencyMs: number): Step {
  const { event, delivery, maxPayload } = d.inv;
  const { ctx, candidates, cacheKey } = event.data;
  const { attempts: attempt } = d.state;
  const candidate = candidates[d.state.index]!;
  d.settle(candidate.deployment, { kind: 'success', trial: d.state.trial });
  d.update({ trial: undefined });
  const base = { attempt, model: candidate.model, deployment: candidate.deployment, latencyMs };
  const what = `${describe(candidate)} answered ${answer.status} in ${latencyMs} ms${headroom(answer.remaining)}`;
  d.emit(d.stamp('invoke.attempted', what, { ...base, ok: true, status: answer.status, ...queuedOn(d, attempt) }, attemptSuffix(delivery, attempt)));

  // billed in full whatever its size: an answer too large to carry is cut, never dropped
  const fitted = fitBody(answer.body, ctx.request.endpoint, ctx, maxPayload);
  for (const c of fitted.cuts) d.note(`answer's ${c.path} of ${c.from} characters cut to ${c.to} to fit NATS max_payload`);
  const completed = d.stamp('chat.completed', `answered by ${describe(candidate)} after ${attempt} attempt${attempt === 1 ? '' : 's'}`, {
    ctx: settledContext(ctx),
    answer: { model: candidate.model, body: fitted.body, usage: answer.usage },
    deployment: candidate.deployment,
    attempts: attempt,
    upstreamLatencyMs: latencyMs,
    ...(cacheKey !== undefined ? { cacheKey } : {}),
    ...(d.inv.queuedMs !== undefined ? { queuedMs: d.inv.queuedMs } : {}),
    ...priceOf(d.inv, candidate.model),
  });
  const reply = {
    requestId: event.requestId,
    model: candidate.model,
    body: fitted.body,
    usage: answer.usage,
    cached: false,
    created: Math.floor(completed.at / 1000),
    ...(ctx.rateLimit !== undefined ? { rateLimit: ctx.rateLimit } : {}),
    ...(d.inv.queuedMs !== undefined ? { queueMs: d.inv.queuedMs } : {}),
  };
  return d.done({ kind: 'conclude', terminal: completed, reply });
}

function failed(d: Draft, failure: Failure, latencyMs: number): Step {
  const { event, delivery, deployments, settings, random } = d.inv;
  const { ctx, candidates } = event.data;
  const { index, onCandidate, attempts: attempt } = d.state;
  const candidate = candidates[index]!;
  d.settle(candidate.deployment, circuitInputOf(failure, d.state.trial));
  d.update({ last: failure, trial: undefined });
  const later = pickCandidate(candidates, index + 1, d.circuitOf, deployments, d.now, settings);
  const then = afterFailure(failure, { attemptOnCandidate: onCandidate, hasFallback: later.index >= 0, now: d.now, deadline: ctx.deadline, settings, random });

  const base = { attempt, model: candidate.model, deployment: candidate.deployment, latencyMs };
  const status = failure.status !== undefined ? { status: failure.status } : {};
  const suffix = attemptSuffix(delivery, attempt);
  const what = `${describe(candidate)} failed${failure.status !== undefined ? ` with ${failure.status}` : ` (${failure.kind})`} after ${latencyMs} ms${headroom(failure.remaining)}`;
  d.emit(d.stamp('invoke.attempted', what, { ...base, ok: false, ...status, ...queuedOn(d, attempt) }, suffix));
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
      return fail(d, then.code, then.message, then.reason, { upstream: then.upstream });
    default: {
      const _exhaustive: never = then;
      return _exhaustive;
    }
  }
}

/**
 * The client left: the running call was stopped (the interpreter aborted it), and the request
 * ends with what was streamed so far billed. The stopped call has no invoke.attempted of its own
 * (it did not fail; the degrader must not count it), chat.cancelled says how long it ran.
 */
function cancelled(d: Draft, streamed: Streamed | undefined, latencyMs: number | undefined): Step {
  const { requestId, data } = d.inv.event;
  const { ctx, candidates } = data;
  const candidate = candidates[d.state.index]!;
  // a half-open trial that was running is given back: the cancel says nothing of the deployment
  if (streamed !== undefined) d.settle(candidate.deployment, { kind: 'neutral', trial: d.state.trial });
  const { usage, counted } = cancelledUsage(streamed, ctx.request.promptTokens);
  const what =
    streamed === undefined
      ? `cancelled by the client after ${d.state.attempts} attempts, no upstream call running`
      : `cancelled by the client: the call to ${describe(candidate)} was stopped after ${latencyMs ?? 0} ms, ${usage.completion_tokens} completion tokens ${counted ? 'counted from the streamed text' : 'as the upstream reported'}`;
  const terminal = d.stamp('chat.cancelled', what, {
    ctx: settledContext(ctx),
    model: candidate.model,
    deployment: candidate.deployment,
    attempts: d.state.attempts,
    usage,
    counted,
    ...priceOf(d.inv, candidate.model),
  });
  // sent only when someone still listens on the NATS inbox
  const { message, status } = Errors.request_cancelled;
  return d.done({ kind: 'conclude', terminal, reply: { requestId, error: { code: 'request_cancelled', message, status } } });
}

/**
 * Ends a request before any attempt because the invoker cannot send it: its body is not in the
 * stream where `ctx.requestSeq` points (expired, never set, or another event). Pure.
 */
export function unsendable(inv: Invocation, state: AttemptState, problem: string, now: number): Step {
  const message = `Sluice could not read the request's body: ${problem}. Send the request again.`;
  return fail(new Draft(inv, state, now), 'internal_error', message, `request body unreadable: ${problem}`);
}

interface Upstream {
  upstream?: UpstreamError | undefined;
  retryAfterMs?: number | undefined;
}

/**
 * chat.failed and the client's error. An upstream's own refusal keeps its meaning: the client
 * is told the upstream's status, type, code, param and message, as OpenAI would tell it.
 */
function fail(d: Draft, code: ErrorCode, message: string, reason: string, from: Upstream = {}): Step {
  const { requestId, data } = d.inv.event;
  const { ctx } = data;
  const { upstream, retryAfterMs } = from;
  const status = code === 'upstream_rejected' && upstream ? upstream.status : Errors[code].status;
  const failed = d.stamp('chat.failed', reason, {
    code,
    status,
    message,
    attempts: d.state.attempts,
    receivedAt: ctx.receivedAt,
    ...(ctx.replyTo !== undefined ? { replyTo: ctx.replyTo } : {}),
    ...(upstream !== undefined ? { upstream } : {}),
  });
  const error: ChatErrorReply['error'] =
    code === 'upstream_rejected' && upstream
      ? { code: upstream.code ?? code, message, status, type: upstream.type, param: upstream.param }
      : { code, message, status };
  if (retryAfterMs !== undefined) error.retryAfterMs = retryAfterMs;
  return d.done({ kind: 'conclude', terminal: failed, reply: { requestId, error } });
}

/** The price `model`'s tokens are billed at under the invocation's config (a batch line's batch price), recorded on the terminal event. */
function priceOf(inv: Invocation, model: string): { price?: BilledPrice } {
  return inv.models ? { price: billedPrice(inv.models, model, inv.event.data.ctx.batch !== undefined) } : {};
}

/** What Sluice changed in the body it sent, prefixed to the attempt's reason. */
function noteSent(d: Draft, sent: readonly string[] | undefined): void {
  if (sent?.length) d.note(`sent with ${sent.join(', ')}`);
}

/** The lane wait, on the first attempt of a delivery only (the later ones did not wait in the lane). */
function queuedOn(d: Draft, attempt: number): { queuedMs?: number } {
  return attempt === 1 && d.inv.queuedMs !== undefined ? { queuedMs: d.inv.queuedMs } : {};
}

/** The upstream's rate-limit headroom, for the timeline (a proper event for it is a later step). */
function headroom(r: Remaining | undefined): string {
  const parts = [r?.requests !== undefined && `requests ${r.requests}`, r?.tokens !== undefined && `tokens ${r.tokens}`].filter(Boolean);
  return parts.length ? `; upstream remaining: ${parts.join(', ')}` : '';
}
