import type { AnyEvent, Candidate, ChatReply, SluiceConfig, SluiceEvent } from '@sluice/contracts';
import { resultMark, type Delivery, type ResultMark } from '@sluice/bus';
import { withTrace, type Logger } from '@sluice/telemetry';
import { startAttempts, type AttemptOutcome, type Invocation, type Step } from './attempts.js';
import { Unsendable, type BodyReader } from './body.js';
import { Balancer } from './balance.js';
import { attemptCall } from './call.js';
import type { Cancels } from './cancels.js';
import { closedCircuit, decide, type Circuit, type Outcome } from './circuit.js';
import { circuitEvent } from './circuit-events.js';
import type { CircuitStore } from './circuit-store.js';
import { variantOf } from './outgoing.js';
import { decideDelivery, mayHaveAnswer, type DeliveryCount, type StoredAnswer } from './replay.js';
import type { ResultStore } from './results.js';
import { step, unsendable } from './step.js';
import { LimitsObserver } from './observe-limits.js';
import { Timeline } from './timeline.js';
import type { ClientPool } from './upstream.js';

export interface InvokerDeps {
  config: () => SluiceConfig;
  clients: ClientPool;
  /**
   * Circuit per deployment, shared by every replica (`sluice_circuits`, circuit-store.ts): read
   * from memory for admission, written by compare-and-set only when a call changes it.
   */
  circuits: CircuitStore;
  /** Orders each request's deployments (weights, latency EWMA, sticky users) and learns their latency; one per replica. */
  balancer?: Balancer;
  /**
   * Publishes an event and resolves on the stream's ack; `trace` is the input's trace context.
   * `endedAs` (bus `Published`): the event was terminal and its request had already ended with
   * another terminal event.
   */
  publish: (event: AnyEvent, trace: Trace) => Promise<{ endedAs?: string } | void>;
  /**
   * Sends a message to a client's reply inbox; `tenant` and `webhook` mark a stored result
   * (`sluice.results.<id>`), and `keep` stores a final answer there too. Resolves once what is
   * stored has the stream's ack (bus `answer`); a chunk is only sent.
   */
  reply: (replyTo: string | undefined, reply: ChatReply, mark?: ResultMark) => Promise<void> | void;
  /** Terminal answers by request id: written after every terminal event, read on redeliveries. */
  results: ResultStore;
  /** The NATS server's max_payload in bytes: an answer is cut to fit the messages that carry it (fit.ts). */
  maxPayload: () => number;
  /** The client's body of a request, from its chat.requested (body.ts). */
  readBody: BodyReader;
  /** The clients' cancels: a cancelled request's call is stopped and the request ends as chat.cancelled. */
  cancels: Cancels;
  log: Logger;
  now?: () => number;
  random?: () => number;
  /** Resolves after `ms`, or as soon as `cancel` aborts. */
  sleep?: (ms: number, cancel: AbortSignal) => Promise<void>;
}

/** W3C trace context of the input, carried to every event it causes. */
type Trace = Pick<Delivery, 'traceparent' | 'tracestate'>;

/** What the handler reads of its delivery (consumeEvents' `Delivery` fits): trace context and delivery count. */
export type Arrival = Trace & DeliveryCount;

/** The chat.routed handler; resolves once the request is answered, or throws to have it redelivered. */
export type Invoke = (event: SluiceEvent<'chat.routed'>, delivery?: Arrival) => Promise<void>;

/**
 * Handles one chat.routed event: reads the client's body, calls the candidates in order with
 * retries, backoff and circuit breakers, publishes every attempt, then ends the request with
 * chat.completed, chat.failed or (the client cancelled) chat.cancelled, answers the client and
 * stores the answer. Resolves once the terminal event is in the stream and the answer is stored.
 * A redelivery whose request already has a stored answer re-publishes its terminal event and
 * re-sends the answer without calling the upstream.
 *
 * What to do is decided by `step` (pure, step.ts); this loop only does it: the upstream call, the
 * sleep, the publishes, and applying each verdict to the shared circuits (a trial slot claimed
 * before its call; a lost claim is stepped as `refused`).
 */
export function createInvoker(deps: InvokerDeps): Invoke {
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const sleep = deps.sleep ?? sleepUnlessCancelled;
  const balancer = deps.balancer ?? new Balancer(random);
  // what the upstreams say of their own limits, sampled, beside the requests' events (observe-limits.ts)
  const limits = new LimitsObserver((e) => deps.publish(e, {}), deps.log, now);
  const calls = { clients: deps.clients, reply: deps.reply, now, observe: limits.observe };

  return async function invoke(event, delivery = {}) {
    // the lane scheduler runs a message as it gives it a slot, so this is when its wait ended
    const queuedMs = queueTime(event.at, now());
    const { ctx, candidates } = event.data;
    const { requestId, tenant } = event;
    const log = withTrace(deps.log, delivery.traceparent, { requestId });
    const publish = (e: AnyEvent) => deps.publish(e, delivery);

    const stored = mayHaveAnswer(delivery) ? await lookup(deps.results, requestId, log) : undefined;
    if (decideDelivery(stored, delivery) === 'replay' && stored) {
      log.info({ delivery: delivery.deliveryCount, terminal: stored.event.type }, 'redelivered request was already answered; replaying the stored answer');
      // same id: the stream drops it inside the duplicate window and restores it after
      await publish(stored.event);
      // a client still waiting gets its answer; one that already has it ignores the inbox
      await deps.reply(ctx.replyTo, stored.result, resultMark(event.tenant, ctx));
      return;
    }

    const config = deps.config();
    // a canary variant's system message and sampling params, from the live config (outgoing.ts)
    const variant = variantOf(config, ctx.variant);
    // the request's deployments in the order to try them (balance.ts), decided once on this replica's view of the circuits
    const order = balancer.order(event, config, (d) => deps.circuits.view(d) ?? closedCircuit, now());
    const inv: Invocation = {
      event: order.event,
      delivery,
      settings: config.invoker,
      deployments: config.deployments,
      // each answer records the price it is billed at (the ledger rebuilds exactly from it)
      models: config.models,
      maxPayload: deps.maxPayload(),
      random,
      queuedMs,
    };
    const timeline = new Timeline(publish);
    // applies a change to the shared circuit; the transition is published only by the replica whose write made it
    const settle = async (deployment: string, change: (c: Circuit) => Outcome): Promise<Outcome> => {
      let o: Outcome;
      try {
        o = await deps.circuits.apply(deployment, change);
      } catch (err) {
        // only a storm of writers gets here; a trial not surely claimed is not taken
        log.warn({ err, deployment }, 'circuit change not applied');
        return { circuit: closedCircuit, refused: 'circuit busy' };
      }
      if (o.transition) {
        const e = circuitEvent(deployment, o.circuit, o.transition, requestId, now());
        logTransition(log, e);
        timeline.fire(e);
      }
      return o;
    };
    const cancel = deps.cancels.watch(requestId);
    try {
      let state = startAttempts(inv);
      if (order.note !== undefined) state = { ...state, notes: [...state.notes, order.note] };
      let body: Record<string, unknown> | undefined;
      let s: Step | undefined;
      try {
        body = await deps.readBody(ctx, requestId);
      } catch (e) {
        if (!(e instanceof Unsendable)) throw e;
        log.error({ err: e }, 'request body unreadable; failing the request');
        s = unsendable(inv, state, e.message, now());
      }
      let outcome: AttemptOutcome = { kind: 'start' };
      for (;;) {
        // a cancel between calls (it came first, or during a wait) ends the request before the next one
        if (cancel.aborted && (outcome.kind === 'start' || outcome.kind === 'waited')) outcome = { kind: 'cancelled' };
        const at = now();
        // the circuits as this replica sees them now: other requests and replicas change them while a call runs
        s ??= step(inv, { ...state, circuits: circuitsOf(deps.circuits, candidates) }, outcome, at);
        for (const e of s.events) timeline.fire(e);
        // before the next step reads them, so this request's next pick sees its own verdict
        await Promise.all(s.circuits.map(({ deployment, input }) => settle(deployment, (c) => decide(c, input, at, config.invoker))));
        state = s.state;
        const next = s.next;
        s = undefined;
        switch (next.kind) {
          case 'call': {
            const { trial, candidate } = next;
            if (trial !== undefined) {
              // a half-open trial slot is claimed across replicas before the call; a lost claim picks again
              const claim = await settle(candidate.deployment, (c) => decide(c, { kind: 'trial', trial }, at, config.invoker));
              if (claim.refused !== undefined) {
                outcome = { kind: 'refused', reason: claim.refused };
                break;
              }
            }
            outcome = await attemptCall(
              calls,
              { event, body: body!, cancel, queuedMs, ...(variant ? { variant } : {}) },
              candidate,
              config.deployments[candidate.deployment]!,
            );
            balancer.observe(candidate.deployment, outcome, config.invoker);
            break;
          }
          case 'wait':
            await sleep(next.ms, cancel);
            outcome = { kind: 'waited' };
            break;
          case 'conclude': {
            const { terminal, reply } = next;
            const endedAs = await publishTerminal(timeline, publish, terminal);
            if (endedAs !== undefined) {
              // another stage ended the request first (a redelivery past its deadline): the stream
              // kept that outcome and the client had that answer; what this call served is not billed
              log.error(
                { terminal: terminal.type, endedAs, ...('answer' in terminal.data ? { usage: terminal.data.answer.usage } : {}) },
                'the request had already ended; its answer from the upstream is dropped',
              );
              return;
            }
            // stored alongside the reply, and awaited before the input is acked, so a redelivery
            // after this point replays instead of calling the upstream
            const storing = store(deps.results, { requestId, tenant, result: reply, completedAt: terminal.at, event: terminal }, log);
            // a cancelled request's client is usually gone; the inbox drops what nobody listens to
            const answering = deps.reply(ctx.replyTo, reply, resultMark(tenant, ctx));
            await Promise.all([storing, answering]);
            return;
          }
          default: {
            const _exhaustive: never = next;
            return _exhaustive;
          }
        }
      }
    } finally {
      deps.cancels.done(requestId);
    }
  };
}

/**
 * ms from the routing to now, whole; never negative (the router's clock may run ahead of this
 * host's). A redelivered request counts from its first routing, the earlier try included.
 */
function queueTime(routedAt: number, takenAt: number): number {
  return Math.max(0, Math.round(takenAt - routedAt));
}

/** Sleeps `ms`, or less when the request is cancelled meanwhile. */
function sleepUnlessCancelled(ms: number, cancel: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (cancel.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      cancel.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    cancel.addEventListener('abort', done, { once: true });
  });
}

/**
 * Publishes the terminal event once every event of the timeline is in the stream. chat.completed
 * (and chat.cancelled) is sent right behind the attempts on the same connection, so the stream
 * keeps their order, without waiting a round trip for their acks; the reply (and the ack of the
 * input) still waits for all of them. chat.failed goes out only after them. Returns the type the
 * request had already ended with, when another stage ended it first.
 */
async function publishTerminal(
  timeline: Timeline,
  publish: (e: AnyEvent) => Promise<{ endedAs?: string } | void>,
  terminal: StoredAnswer['event'],
): Promise<string | undefined> {
  if (terminal.type !== 'chat.failed') {
    const [, ack] = await Promise.all([timeline.settle(), publish(terminal)]);
    return ack?.endedAs;
  }
  await timeline.settle();
  return (await publish(terminal))?.endedAs;
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

/**
 * Stores a terminal answer. A failed write is only logged: throwing would nak the input, and the
 * redelivery would call the upstream again, the very thing the store prevents.
 */
async function store(results: ResultStore, answer: StoredAnswer, log: Logger): Promise<void> {
  try {
    await results.put(answer);
  } catch (e) {
    log.warn({ err: e }, 'could not store the answer; a redelivery would call the upstream again');
  }
}

/** This replica's view of a request's deployments' circuits, as the step reads them (missing = closed). */
function circuitsOf(circuits: CircuitStore, candidates: readonly Candidate[]): Record<string, Circuit> {
  const view: Record<string, Circuit> = {};
  for (const { deployment } of candidates) {
    const c = circuits.view(deployment);
    if (c) view[deployment] = c;
  }
  return view;
}

function logTransition(log: Logger, e: AnyEvent): void {
  if (e.type === 'circuit.opened') log.warn({ deployment: e.data.deployment, failures: e.data.failures }, 'circuit opened');
  else if (e.type === 'deployment.paused') log.warn({ deployment: e.data.deployment, retryAfterMs: e.data.retryAfterMs }, 'deployment paused');
  else if (e.type === 'circuit.half_opened') log.info({ deployment: e.data.deployment }, 'circuit half-open');
  else if (e.type === 'circuit.closed') log.info({ deployment: e.data.deployment }, 'circuit closed');
}
