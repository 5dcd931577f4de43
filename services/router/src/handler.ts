import { decided, type Control, type Decided, type Emitted, type Received } from '@sluice/bus';
import {
  Consumers,
  EventType,
  makeEvent,
  replayChunks,
  ServiceName,
  settledContext,
  withoutRouting,
  STATIC_FALLBACK,
  type ChatReply,
  type ChatResult,
  type SluiceEvent,
} from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import { route } from './router.js';
import { staticBody } from './static.js';

type Router = typeof Consumers.router;

export interface RouterDeps {
  control: Control;
  log: Logger;
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
    const decision = route(
      { tenant: event.tenant, request: ctx.request, downgrade: ctx.downgrade },
      deps.control.config(),
      deps.control.degrade(),
      deps.control.canaries(),
    );
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
      case 'static': {
        const { requestId } = event;
        const { endpoint } = ctx.request;
        const created = Math.floor(at / 1000);
        const usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
        const answer = { model: STATIC_FALLBACK, body: staticBody(endpoint, decision.content, requestId, created), usage };
        const completed: SluiceEvent<'chat.completed'> = makeEvent(EventType.ChatCompleted, fields, {
          ctx: settledContext(ctx),
          answer,
          deployment: STATIC_FALLBACK,
          attempts: 0,
          upstreamLatencyMs: 0,
        });
        const rateLimit = ctx.rateLimit ? { rateLimit: ctx.rateLimit } : {};
        const result: ChatResult = { requestId, ...answer, cached: false, created, ...rateLimit };
        // a client streaming sees the same sequence as from an upstream: chunks, then the result
        const chunks: ChatReply[] = ctx.request.stream
          ? replayChunks(endpoint, answer.body, requestId).map((chunk, i) => ({ requestId, model: STATIC_FALLBACK, chunk, ...(i === 0 ? rateLimit : {}) }))
          : [];
        return decided(
          [completed],
          [...chunks, result].map((reply) => ({ to: ctx.replyTo, reply })),
        );
      }
      default: {
        const _exhaustive: never = decision;
        throw new Error(`unhandled route decision ${JSON.stringify(_exhaustive)}`);
      }
    }
  };
}
