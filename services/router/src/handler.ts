import { publishEvent, PoisonMessage, sendReply, traceOf, type Bus, type Control, type Delivery } from '@sluice/bus';
import { EventType, makeEvent, ServiceName, STATIC_FALLBACK, type AnyEvent, type ChatResult, type SluiceEvent } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import { countMessagesAsync } from '@sluice/tokens';
import { route } from './router.js';

export interface RouterDeps {
  bus: Bus;
  control: Control;
  log: Logger;
  now?: () => number;
}

/** Model and deployment named on a static answer, so the ledger can tell it from upstream answers. */

/**
 * cache.missed -> chat.routed | chat.shed (terminal) | chat.completed from the static fallback
 * (terminal). Config and degrade level are read live on every message. A terminal outcome is
 * published first and then answered on the request's reply inbox.
 */
export function onCacheMissed(deps: RouterDeps) {
  const now = deps.now ?? Date.now;
  return async (event: AnyEvent, delivery: Delivery): Promise<void> => {
    if (event.type !== EventType.CacheMissed) throw new PoisonMessage(`router cannot handle ${event.type}`);
    const { ctx, key } = event.data;
    // route() scores an `auto` request by its prompt's tokens (at degrade level 0): counted here
    // first, a long prompt on a worker thread, and remembered for route()'s own count
    if (ctx.request.model === 'auto' && deps.control.degrade().level === 0) await countMessagesAsync(ctx.request.messages);
    const decision = route({ tenant: event.tenant, request: ctx.request }, deps.control.config(), deps.control.degrade());
    const at = now();
    const fields = { requestId: event.requestId, tenant: event.tenant, service: ServiceName.Router, at, reason: decision.reason };
    const trace = traceOf(delivery);

    switch (decision.kind) {
      case 'routed': {
        const { tier, lane, candidates, maxTokens, degradeLevel } = decision;
        const data = { ctx, tier, lane, candidates, degradeLevel, ...(maxTokens !== undefined ? { maxTokens } : {}), ...(key !== undefined ? { cacheKey: key } : {}) };
        await publishEvent(deps.bus.js, makeEvent(EventType.ChatRouted, fields, data), trace);
        return;
      }
      case 'shed': {
        const { code, status, message, retryAfterMs, degradeLevel } = decision;
        await publishEvent(deps.bus.js, makeEvent(EventType.ChatShed, fields, { code, retryAfterMs, degradeLevel, replyTo: ctx.replyTo, receivedAt: ctx.receivedAt }), trace);
        sendReply(deps.bus.nc, ctx.replyTo, { requestId: event.requestId, error: { code, message, status, ...(retryAfterMs > 0 ? { retryAfterMs } : {}) } });
        return;
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
        await publishEvent(deps.bus.js, completed, trace);
        const { requestId } = event;
        // a client streaming sees the same sequence as from an upstream: chunk(s), then the result
        if (ctx.request.stream) sendReply(deps.bus.nc, ctx.replyTo, { requestId, model: STATIC_FALLBACK, chunk: { role: 'assistant', content: decision.content } });
        const result: ChatResult = { requestId, model: STATIC_FALLBACK, message: answer.message, finishReason: 'stop', usage: answer.usage, cached: false, created: Math.floor(at / 1000) };
        sendReply(deps.bus.nc, ctx.replyTo, result);
        return;
      }
      default: {
        const _exhaustive: never = decision;
        throw new Error(`unhandled route decision ${JSON.stringify(_exhaustive)}`);
      }
    }
  };
}
