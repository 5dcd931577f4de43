import { performance } from 'node:perf_hooks';
import {
  Errors,
  makeEvent,
  ServiceName,
  SYSTEM_TENANT,
  type AnyEvent,
  type Candidate,
  type ChatErrorReply,
  type ChatReply,
  type ChatResult,
  type ErrorCode,
  type EventDataOf,
  type EventType,
  type SluiceConfig,
  type SluiceEvent,
} from '@sluice/contracts';
import type { Delivery } from '@sluice/bus';
import { withTrace, type Logger } from '@sluice/telemetry';
import { closedCircuit, recordFailure, recordNeutral, recordSuccess, type Circuit, type Outcome } from './circuit.js';
import { afterFailure, countsAgainstDeployment, describe, exhaustedCode, pickCandidate } from './plan.js';
import { attemptSuffix, decideDelivery, mayHaveAnswer, type DeliveryCount, type StoredAnswer } from './replay.js';
import type { ResultStore } from './results.js';
import { classifyError, type Failure, type Remaining } from './retry.js';
import { Timeline } from './timeline.js';
import { fitContent } from './fit.js';
import { callUpstream, type ClientPool, type UpstreamAnswer } from './upstream.js';

export interface InvokerDeps {
  config: () => SluiceConfig;
  clients: ClientPool;
  /**
   * Circuit per deployment. In memory, so each replica learns a deployment's health on its own;
   * sharing it through a KV bucket is a later step.
   */
  circuits: Map<string, Circuit>;
  /** Publishes an event and resolves on the stream's ack; `trace` is the input's trace context. */
  publish: (event: AnyEvent, trace: Trace) => Promise<unknown>;
  /** Sends a message to a client's reply inbox (fire and forget). */
  reply: (replyTo: string | undefined, reply: ChatReply) => void;
  /** Terminal answers by request id: written after every terminal event, read on redeliveries. */
  results: ResultStore;
  /** The NATS server's max_payload in bytes: an answer is cut to fit the messages that carry it (fit.ts). */
  maxPayload: () => number;
  log: Logger;
  now?: () => number;
  random?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** W3C trace context of the input, carried to every event it causes. */
export type Trace = Pick<Delivery, 'traceparent' | 'tracestate'>;

/** What the handler reads of its delivery (consumeEvents' `Delivery` fits): trace context and delivery count. */
export type Arrival = Trace & DeliveryCount;

/** The chat.routed handler; resolves once the request is answered, or throws to have it redelivered. */
export type Invoke = (event: SluiceEvent<'chat.routed'>, delivery?: Arrival) => Promise<void>;

type Attempt = { ok: true; answer: UpstreamAnswer; latencyMs: number } | { ok: false; failure: Failure; latencyMs: number };

/**
 * Handles one chat.routed event: calls the candidates in order with retries, backoff and
 * circuit breakers, publishes every attempt, then ends the request with chat.completed or
 * chat.failed, answers the client and stores the answer. Resolves once the terminal event is in
 * the stream and the answer is stored. A redelivery whose request already has a stored answer
 * re-publishes its terminal event and re-sends the answer without calling the upstream.
 */
export function createInvoker(deps: InvokerDeps): Invoke {
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));

  return async function invoke(event, delivery = {}) {
    const { ctx, candidates } = event.data;
    const { requestId, tenant } = event;
    const log = withTrace(deps.log, delivery.traceparent, { requestId });
    const publish = (e: AnyEvent) => deps.publish(e, delivery);

    const stored = mayHaveAnswer(delivery) ? await lookup(deps.results, requestId, log) : undefined;
    if (decideDelivery(stored, delivery) === 'replay' && stored) {
      log.info({ delivery: delivery.redelivered, terminal: stored.event.type }, 'redelivered request was already answered; replaying the stored answer');
      // same id: the stream drops it inside the duplicate window and restores it after
      await publish(stored.event);
      // a client still waiting gets its answer; one that already has it ignores the inbox
      deps.reply(ctx.replyTo, stored.result);
      return;
    }

    const config = deps.config();
    const settings = config.invoker;
    const timeline = new Timeline(publish);
    if (mayHaveAnswer(delivery)) timeline.note(`delivery ${delivery.redelivered}: no stored answer, calling the upstream again`);
    const stamp = <T extends EventType>(type: T, reason: string, data: EventDataOf<T>, suffix?: string | number) =>
      makeEvent(type, { requestId, tenant, service: ServiceName.Invoker, at: now(), reason: timeline.reason(reason), ...(suffix !== undefined ? { suffix } : {}) }, data);

    const circuitOf = (deployment: string) => deps.circuits.get(deployment) ?? closedCircuit;
    const settleCircuit = (deployment: string, outcome: Outcome) => {
      deps.circuits.set(deployment, outcome.circuit);
      const t = outcome.transition;
      if (!t) return;
      const at = now();
      const id = `circuit-${deployment}-${outcome.circuit.transitions}-${at}`;
      const fields = { requestId: id, tenant: SYSTEM_TENANT, service: ServiceName.Invoker, at };
      if (t.to === 'opened') {
        log.warn({ deployment, failures: t.failures }, 'circuit opened');
        timeline.fire(makeEvent('circuit.opened', { ...fields, reason: `${t.failures} consecutive failures (last in request ${requestId}); calls skip ${deployment} for ${t.openForMs} ms` }, { deployment, failures: t.failures, openForMs: t.openForMs }));
      } else {
        log.info({ deployment }, 'circuit closed');
        timeline.fire(makeEvent('circuit.closed', { ...fields, reason: `trial call in request ${requestId} succeeded` }, { deployment }));
      }
    };

    /**
     * Answers the client and stores the answer once its terminal event is in the stream. The
     * store is awaited before the input is acked, so a redelivery after this point replays
     * instead of calling the upstream. A failed write is only logged: throwing would nak the
     * input, and the redelivery would call the upstream again, the very thing the store prevents.
     */
    const conclude = async (terminal: StoredAnswer['event'], result: ChatResult | ChatErrorReply) => {
      const storing = deps.results
        .put({ requestId, tenant, result, completedAt: terminal.at, event: terminal })
        .catch((e: unknown) => log.warn({ err: e }, 'could not store the answer; a redelivery would call the upstream again'));
      deps.reply(ctx.replyTo, result);
      await storing;
    };

    let attempts = 0;
    const fail = async (code: ErrorCode, message: string, reason: string) => {
      await timeline.settle();
      const status = Errors[code].status;
      const data = { code, status, message, attempts, receivedAt: ctx.receivedAt, ...(ctx.replyTo !== undefined ? { replyTo: ctx.replyTo } : {}) };
      const failed = stamp('chat.failed', reason, data);
      await publish(failed);
      await conclude(failed, { requestId, error: { code, message, status } });
    };

    const attemptOn = async (candidate: Candidate): Promise<Attempt> => {
      const deployment = config.deployments[candidate.deployment]!;
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
          ...(event.data.maxTokens !== undefined ? { maxTokens: event.data.maxTokens } : {}),
          idleTimeoutMs: deployment.timeoutMs,
          deadline: ctx.deadline,
          now,
          onDelta: (content) => {
            deps.reply(ctx.replyTo, { requestId, model: candidate.model, chunk: forwarded ? { content } : { content, role: 'assistant' } });
            forwarded = true;
          },
        });
        return { ok: true, answer, latencyMs: latency() };
      } catch (e) {
        const failure = classifyError(e, now());
        return { ok: false, failure: forwarded ? { ...failure, partial: true } : failure, latencyMs: latency() };
      }
    };

    let index = 0;
    let onCandidate = 0;
    let last: Failure | undefined;
    for (;;) {
      const t = now();
      if (t >= ctx.deadline) {
        return fail('deadline_exceeded', Errors.deadline_exceeded.message, `deadline passed after ${attempts} attempts`);
      }
      const pick = pickCandidate(candidates, index, circuitOf, config.deployments, t, settings);
      for (const s of pick.skipped) timeline.note(s);
      if (pick.index < 0) {
        const code = exhaustedCode(t, ctx.deadline);
        const message = last
          ? `${Errors[code].message} Last error (${attempts} attempts): ${last.message}`
          : 'No upstream deployment is available for this request right now (circuits open); retry later.';
        return fail(code, message, `no candidate left after ${attempts} attempts`);
      }
      if (pick.index !== index) onCandidate = 0;
      index = pick.index;
      const candidate = candidates[index]!;
      deps.circuits.set(candidate.deployment, pick.circuit!);
      onCandidate++;
      attempts++;
      const attempt = attempts;
      const suffix = attemptSuffix(delivery, attempt);
      const result = await attemptOn(candidate);
      const base = { attempt, model: candidate.model, deployment: candidate.deployment, latencyMs: result.latencyMs };

      if (result.ok) {
        const { answer } = result;
        settleCircuit(candidate.deployment, recordSuccess(circuitOf(candidate.deployment)));
        timeline.fire(stamp('invoke.attempted', `${describe(candidate)} answered ${answer.status} in ${result.latencyMs} ms${headroom(answer.remaining)}`, { ...base, ok: true, status: answer.status }, suffix));
        // billed in full whatever its size: an answer too large to carry is cut, never dropped
        const fitted = fitContent(answer.content, ctx, deps.maxPayload());
        const message = { role: 'assistant' as const, content: fitted.content };
        const finishReason = fitted.truncatedFrom === undefined ? answer.finishReason : 'length';
        if (fitted.truncatedFrom !== undefined) timeline.note(`answer of ${fitted.truncatedFrom} characters cut to ${fitted.content.length} to fit NATS max_payload`);
        const completed = stamp('chat.completed', `answered by ${describe(candidate)} after ${attempt} attempt${attempt === 1 ? '' : 's'}`, {
          ctx,
          answer: { model: candidate.model, message, finishReason, usage: answer.usage },
          deployment: candidate.deployment,
          attempts: attempt,
          upstreamLatencyMs: result.latencyMs,
          ...(event.data.cacheKey !== undefined ? { cacheKey: event.data.cacheKey } : {}),
        });
        // sent right behind the attempts on the same connection, so the stream keeps their order,
        // without waiting a round trip for their acks; the reply (and the ack of the input)
        // still waits for all of them
        const terminal = publish(completed);
        await Promise.all([timeline.settle(), terminal]);
        await conclude(completed, { requestId, model: candidate.model, message, finishReason, usage: answer.usage, cached: false, created: Math.floor(completed.at / 1000) });
        return;
      }

      const { failure } = result;
      last = failure;
      const circuit = circuitOf(candidate.deployment);
      settleCircuit(candidate.deployment, countsAgainstDeployment(failure) ? recordFailure(circuit, now(), settings) : recordNeutral(circuit));
      const later = pickCandidate(candidates, index + 1, circuitOf, config.deployments, now(), settings);
      const step = afterFailure(failure, { attemptOnCandidate: onCandidate, hasFallback: later.index >= 0, now: now(), deadline: ctx.deadline, settings, random });
      const what = `${describe(candidate)} failed${failure.status !== undefined ? ` with ${failure.status}` : ` (${failure.kind})`} after ${result.latencyMs} ms${headroom(failure.remaining)}`;
      timeline.fire(stamp('invoke.attempted', what, { ...base, ok: false, ...(failure.status !== undefined ? { status: failure.status } : {}) }, suffix));
      timeline.fire(
        stamp('invoke.failed', `${failure.message}; next: ${step.kind} (${step.reason})`, {
          ...base,
          ...(failure.status !== undefined ? { status: failure.status } : {}),
          error: failure.message,
          retryable: failure.retryable,
          ...(failure.retryAfterMs !== undefined ? { retryAfterMs: failure.retryAfterMs } : {}),
        }, suffix),
      );
      switch (step.kind) {
        case 'retry':
          await sleep(step.delayMs);
          break;
        case 'next-candidate':
          timeline.note(`left ${describe(candidate)}: ${step.reason}`);
          index++;
          onCandidate = 0;
          break;
        case 'fail':
          return fail(step.code, step.message, step.reason);
        default: {
          const _exhaustive: never = step;
          return _exhaustive;
        }
      }
    }
  };
}

/**
 * One key per request, deployment and model: the body sent for them is the same on every
 * delivery (it comes from the chat.routed event), as an idempotency key requires. Retries after a
 * failure reuse it, which is right: upstreams keep only answers served in full.
 */
export function idempotencyKey(requestId: string, deployment: string, model: string): string {
  return `sluice:${requestId}:${deployment}:${model}`;
}

/**
 * The stored answer of a request, if any. A failed read counts as none: the redelivery then
 * calls the upstream as it did before answers were stored, rather than naking the input until
 * the bucket is back.
 */
async function lookup(results: ResultStore, requestId: string, log: Logger): Promise<StoredAnswer | undefined> {
  try {
    return await results.get(requestId);
  } catch (e) {
    log.warn({ err: e }, 'could not read the stored answer; calling the upstream');
    return undefined;
  }
}

/** The upstream's rate-limit headroom, for the timeline (a proper event for it is a later step). */
function headroom(r: Remaining | undefined): string {
  const parts = [r?.requests !== undefined && `requests ${r.requests}`, r?.tokens !== undefined && `tokens ${r.tokens}`].filter(Boolean);
  return parts.length ? `; upstream remaining: ${parts.join(', ')}` : '';
}
