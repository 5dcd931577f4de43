import { decided, type Bus, type Control, type Decided, type Emitted, type Received } from '@sluice/bus';
import { Consumers, EventType, makeEvent, ServiceName, withoutRouting } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import { route } from './router.js';
import { answerStatic } from './static.js';

type Router = typeof Consumers.router;

export interface RouterDeps {
  control: Control;
  log: Logger;
  /** Reads a request's body back at level 3, to choose the static answer's category; without it, the fallback. */
  bus?: Pick<Bus, 'jsm'>;
  now?: () => number;
}

/**
 * cache.missed -> chat.routed | chat.shed (terminal) | chat.completed from the static fallback
 * (terminal). Config and degrade level are read live on every message. A terminal outcome comes
 * with the answer for the request's reply inbox, which the bus sends once the event is stored.
 */
export function onCacheMissed(deps: RouterDeps) {
  const now = deps.now ?? Date.now;
  return async (event: Received<Router>): Promise<Decided<Emitted<Router>>> => {
    const { ctx, key } = event.data;
    const config = deps.control.config();
    const decision = route({ tenant: event.tenant, request: ctx.request, downgrade: ctx.downgrade }, config, deps.control.degrade(), deps.control.canaries());
    const at = now();
    const fields = { requestId: event.requestId, tenant: event.tenant, service: ServiceName.Router, at, reason: decision.reason };

    switch (decision.kind) {
      case 'routed': {
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
      case 'shed': {
        const { code, status, message, retryAfterMs, degradeLevel } = decision;
        const shed = makeEvent(EventType.ChatShed, fields, { code, retryAfterMs, degradeLevel, replyTo: ctx.replyTo, receivedAt: ctx.receivedAt });
        return decided(
          [shed],
          [{ to: ctx.replyTo, reply: { requestId: event.requestId, error: { code, message, status, ...(retryAfterMs > 0 ? { retryAfterMs } : {}) } } }],
        );
      }
      case 'static':
        return answerStatic(deps.bus, config, event, decision.reason, at);
      default: {
        const _exhaustive: never = decision;
        throw new Error(`unhandled route decision ${JSON.stringify(_exhaustive)}`);
      }
    }
  };
}
