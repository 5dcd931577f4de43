import { makeEvent, ServiceName, UNKNOWN_TENANT, type RequestContext, type SluiceEvent } from '@sluice/contracts';
import type { RequestRejected } from './rejection.js';

/**
 * The event that starts a request's way through the pipeline, and the only one that carries the
 * client's body (as sent, or as its token budget changed it: `tokenBudget` lists each change, for
 * the timeline); later events carry the facts in `ctx.request` and a reference to it.
 */
export function requestedEvent(
  requestId: string,
  tenant: string,
  ctx: RequestContext,
  body: unknown,
  tokenBudget?: string,
  /** Why the request is in its lane (lanes.ts `LaneChoice.reason`). */
  lane?: string,
): SluiceEvent<'chat.requested'> {
  const { endpoint, model, priority } = ctx.request;
  const notes = [cacheNote(ctx.request), tokenBudget].filter((n) => n !== undefined);
  return makeEvent(
    'chat.requested',
    {
      requestId,
      tenant,
      service: ServiceName.Ingress,
      at: ctx.receivedAt,
      reason: `accepted at the ${ctx.frontDoor} front door (${endpoint}, model ${model}, ${lane ?? `priority ${priority}`})${notes.map((n) => `; ${n}`).join('')}`,
    },
    { ctx, body },
  );
}

/** The cache headers the request came with, for the timeline: what the cache will be asked to honour. */
function cacheNote(request: RequestContext['request']): string | undefined {
  const { cacheNamespace, cacheTtlSeconds } = request;
  const parts = [
    ...(cacheNamespace !== undefined ? [`cache namespace ${cacheNamespace}`] : []),
    ...(cacheTtlSeconds !== undefined ? [`cache TTL ${cacheTtlSeconds} s asked`] : []),
  ];
  return parts.length > 0 ? parts.join(', ') : undefined;
}

export interface RejectedFacts {
  /** Undefined until the key identified the tenant. */
  tenant: string | undefined;
  receivedAt: number;
  replyTo?: string;
  model?: string;
  user?: string;
}

/** The terminal event of a request ingress refused. Never carries the key. */
export function rejectedEvent(requestId: string, rejection: RequestRejected, facts: RejectedFacts, now: number): SluiceEvent<'chat.rejected'> {
  const model = rejection.known.model ?? facts.model;
  const user = rejection.known.user ?? facts.user;
  return makeEvent(
    'chat.rejected',
    { requestId, tenant: facts.tenant ?? UNKNOWN_TENANT, service: ServiceName.Ingress, at: now, reason: rejection.message },
    {
      code: rejection.code,
      status: rejection.status,
      message: rejection.message,
      stage: ServiceName.Ingress,
      receivedAt: facts.receivedAt,
      ...(model !== undefined ? { model } : {}),
      ...(user !== undefined ? { user } : {}),
      ...(facts.replyTo !== undefined ? { replyTo: facts.replyTo } : {}),
    },
  );
}
