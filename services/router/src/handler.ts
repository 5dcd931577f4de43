import { decided, type Bus, type Control, type Decided, type Emitted, type Received } from '@sluice/bus';
import { Consumers, EventType, isResultSubject, makeEvent, ServiceName, Subjects, withoutRouting, type RequestContext } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import { route, type RouteDecision } from './router.js';
import { answerStatic } from './static.js';
import { RELEASE_BELOW_LEVEL } from './held.js';

type Router = typeof Consumers.router;
type RouterHeld = typeof Consumers.routerHeld;

export interface RouterDeps {
  control: Control;
  log: Logger;
  /** Reads a request's body back at level 3, to choose the static answer's category; without it, the fallback. */
  bus?: Pick<Bus, 'jsm'>;
  now?: () => number;
}

/** What routing a request needs from its event: cache.missed, or chat.held when it is released. */
interface Miss {
  requestId: string;
  tenant: string;
  ctx: RequestContext;
  key?: string | undefined;
}

/**
 * cache.missed -> chat.routed | chat.shed (terminal) | chat.completed from the static fallback
 * (terminal) | chat.held (level 4). Config and degrade level are read live on every message. A
 * terminal outcome comes with the answer for the request's reply inbox, which the bus sends once
 * the event is stored; a held one with the `held` notice, to the inbox and to its result subject.
 */
export function onCacheMissed(deps: RouterDeps) {
  const now = deps.now ?? Date.now;
  return async (event: Received<Router>): Promise<Decided<Emitted<Router>>> => {
    const { ctx, key } = event.data;
    const config = deps.control.config();
    const decision = route({ tenant: event.tenant, request: ctx.request, downgrade: ctx.downgrade }, config, deps.control.degrade(), deps.control.canaries());
    const at = now();
    switch (decision.kind) {
      case 'routed':
      case 'shed':
        return routedOrShed({ requestId: event.requestId, tenant: event.tenant, ctx, key }, decision, at);
      case 'static':
        return answerStatic(deps.bus, config, event, decision.reason, at);
      case 'hold':
        return hold(event, decision, at);
      default: {
        const _exhaustive: never = decision;
        throw new Error(`unhandled route decision ${JSON.stringify(_exhaustive)}`);
      }
    }
  };
}

/**
 * chat.held (released by held.ts once the level is below 2) -> chat.routed | chat.shed, answered
 * on the request's result subject. Its deadline moves to the release: it gets as long as it had
 * when ingress took it. A level that rose again in the meantime sends it back to wait
 * (`redeliverInMs`, not a failure).
 */
export function onHeldReleased(deps: RouterDeps) {
  const now = deps.now ?? Date.now;
  return async (event: Received<RouterHeld>): Promise<Decided<Emitted<RouterHeld>>> => {
    const at = now();
    if (deps.control.degrade().level >= RELEASE_BELOW_LEVEL) return { events: [], replies: [], redeliverInMs: RELEASE_RETRY_MS };
    // its coalescing ended when it was held (the cache's followers went on without it)
    const { coalesce: _coalesce, ...held } = event.data.ctx;
    const ctx: RequestContext = {
      ...held,
      replyTo: Subjects.result(event.requestId),
      deadline: at + Math.max(0, held.deadline - held.receivedAt),
      held: { at: event.at, releasedAt: at },
    };
    const decision = route(
      { tenant: event.tenant, request: ctx.request, downgrade: ctx.downgrade },
      deps.control.config(),
      deps.control.degrade(),
      deps.control.canaries(),
    );
    if (decision.kind !== 'routed' && decision.kind !== 'shed') throw new Error(`a held request routed at level ${decision.degradeLevel} was ${decision.kind}`);
    const released = { ...decision, reason: `released after ${at - event.at} ms held; ${decision.reason}` };
    return routedOrShed({ requestId: event.requestId, tenant: event.tenant, ctx, key: event.data.key }, released, at);
  };
}

/** How soon a held request taken just as the level rose again is looked at again. */
const RELEASE_RETRY_MS = 1_000;

function routedOrShed(miss: Miss, decision: Extract<RouteDecision, { kind: 'routed' | 'shed' }>, at: number): Decided<Emitted<RouterHeld>> {
  const { ctx, key } = miss;
  const fields = { requestId: miss.requestId, tenant: miss.tenant, service: ServiceName.Router, at, reason: decision.reason };
  if (decision.kind === 'routed') {
    const { tier, lane, candidates, maxTokens, degradeLevel, variant } = decision;
    const routedCtx = withoutRouting(ctx);
    const data = {
      // the variant goes on with the context to every later event (the invoker applies it, the ledger reports by it)
      ctx: variant ? { ...routedCtx, variant } : routedCtx,
      tier,
      lane,
      candidates,
      degradeLevel,
      ...(maxTokens !== undefined ? { maxTokens } : {}),
      // an answer made under a degrade level or a spent budget's downgrade (cheaper tier, capped
      // length) is not the answer to the request the client made: it is not stored under that request's key
      // nor is a canary's variant's answer (another model, system message or sampling)
      ...(key !== undefined && degradeLevel === 0 && !ctx.downgrade && !variant ? { cacheKey: key } : {}),
    };
    return decided([makeEvent(EventType.ChatRouted, fields, data)]);
  }
  const { code, status, message, retryAfterMs, degradeLevel } = decision;
  const shed = makeEvent(EventType.ChatShed, fields, { code, retryAfterMs, degradeLevel, replyTo: ctx.replyTo, receivedAt: ctx.receivedAt });
  return decided(
    [shed],
    [{ to: ctx.replyTo, reply: { requestId: miss.requestId, error: { code, message, status, ...(retryAfterMs > 0 ? { retryAfterMs } : {}) } } }],
  );
}

/**
 * Level 4: the miss stays in the stream as chat.held (with what routing it later needs), and the
 * client hears `held` with where its answer will be: on its inbox (HTTP: a 202) and on its result
 * subject, so a fetch before the answer says "held" rather than "unknown".
 */
function hold(event: Received<Router>, decision: Extract<RouteDecision, { kind: 'hold' }>, at: number): Decided<Emitted<Router>> {
  const { requestId, tenant } = event;
  const { ctx, key, estimatedTokens } = event.data;
  const fields = { requestId, tenant, service: ServiceName.Router, at, reason: decision.reason };
  const held = makeEvent(EventType.ChatHeld, fields, { ctx, ...(key !== undefined ? { key } : {}), estimatedTokens, degradeLevel: decision.degradeLevel });
  const resultSubject = Subjects.result(requestId);
  const notice = { requestId, status: 'held' as const, resultSubject, at };
  const replies = [{ to: resultSubject, reply: notice }];
  if (ctx.replyTo !== undefined && !isResultSubject(ctx.replyTo)) replies.unshift({ to: ctx.replyTo, reply: notice });
  return decided([held], replies);
}
