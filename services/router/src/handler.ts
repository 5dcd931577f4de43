import { decided, type Control, type Decided, type Emitted, type Received } from '@sluice/bus';
import { Consumers, EventType, makeEvent, ServiceName, STATIC_FALLBACK, type ChatResult, type SluiceEvent } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import { countMessagesAsync } from '@sluice/tokens';
import { route } from './router.js';

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
    // route() scores an `auto` request by its prompt's tokens (at degrade level 0): counted here
    // first, a long prompt on a worker thread, and remembered for route()'s own count
    if (ctx.request.model === 'auto' && deps.control.degrade().level === 0) await countMessagesAsync(ctx.request.messages);
    const decision = route({ tenant: event.tenant, request: ctx.request }, deps.control.config(), deps.control.degrade());
    const at = now();
    const fields = { requestId: event.requestId, tenant: event.tenant, service: ServiceName.Router, at, reason: decision.reason };

    switch (decision.kind) {
      case 'routed': {
        const { tier, lane, candidates, maxTokens, degradeLevel } = decision;
        const data = {
          ctx,
          tier,
          lane,
          candidates,
          degradeLevel,
          ...(maxTokens !== undefined ? { maxTokens } : {}),
          ...(key !== undefined ? { cacheKey: key } : {}),
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
        const answer = {
          model: STATIC_FALLBACK,
          message: { role: 'assistant' as const, content: decision.content },
          finishReason: 'stop',
          usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
        };
        const completed: SluiceEvent<'chat.completed'> = makeEvent(EventType.ChatCompleted, fields, {
          ctx,
          answer,
          deployment: STATIC_FALLBACK,
          attempts: 0,
          upstreamLatencyMs: 0,
        });
        const { requestId } = event;
        const result: ChatResult = {
          requestId,
          model: STATIC_FALLBACK,
          message: answer.message,
          finishReason: 'stop',
          usage: answer.usage,
          cached: false,
          created: Math.floor(at / 1000),
        };
        // a client streaming sees the same sequence as from an upstream: chunk(s), then the result
        const chunk = { requestId, model: STATIC_FALLBACK, chunk: { role: 'assistant' as const, content: decision.content } };
        return decided([completed], [...(ctx.request.stream ? [{ to: ctx.replyTo, reply: chunk }] : []), { to: ctx.replyTo, reply: result }]);
      }
      default: {
        const _exhaustive: never = decision;
        throw new Error(`unhandled route decision ${JSON.stringify(_exhaustive)}`);
      }
    }
  };
}
