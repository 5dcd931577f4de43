import type { Insertable } from 'kysely';
import { billedPrice, Errors, type AnyEvent, type Answer, type BilledPrice, type EmbeddingUse, type ModelPrice, type RequestContext } from '@sluice/contracts';
import type { EventsTable } from './events.table.js';
import { CacheKind, Outcome, PriceSource, type NewRequest, type RequestPatch } from './requests.table.js';
import { costUsd } from './money.js';
import { withoutContent } from './content.js';

/**
 * Looks up a model's price in the live config; undefined for models without one. Only events
 * that carry no price of their own (recorded before prices were) are billed with it.
 */
export type PriceOf = (model: string) => ModelPrice | undefined;

/**
 * What one event does to a request's row: create it if the request has none yet, else change
 * some columns. Upserts keep the projection right whichever event of a request it sees first
 * (ingress rejections have no chat.requested; a trimmed stream may have lost the start).
 */
export interface RequestUpsert {
  requestId: string;
  insert: NewRequest;
  /** Undefined leaves an existing row as it is. */
  update?: RequestPatch;
}

/**
 * An event's row in `events`, as it is sent: the batch's rows travel as one JSON document (see
 * writes.ts), so `data` stays an object here and is serialized once with the rest.
 */
export type TimelineRow = Omit<Insertable<EventsTable>, 'data'> & { data: unknown };

export interface Projection {
  event: TimelineRow;
  request?: RequestUpsert;
}

/**
 * The ledger's decision for one event: its timeline row and the change to its request's row.
 * Pure. A bill is computed at the price recorded on its event (`price`, `embedding.price`), so
 * projecting the stream again gives the same rows whatever the config says now; `priceOf`
 * supplies the price of an event that carries none, and the row's `price_source` says which it was.
 *
 * @example
 * const { event, request } = project(42, completedEvent, (m) => config.models[m]?.price);
 */
export function project(seq: number, e: AnyEvent, priceOf: PriceOf): Projection {
  const event: TimelineRow = {
    seq,
    request_id: e.requestId || null,
    type: e.type,
    tenant: e.tenant,
    service: e.service,
    at: new Date(e.at),
    reason: e.reason,
    // the conversation is never stored: the timeline reads it back from the stream for tenants that opted in (content.ts)
    data: withoutContent(e.type, timelineData(e)),
  };
  const request = e.requestId ? requestChange(e, priceOf) : undefined;
  return request ? { event, request } : { event };
}

function requestChange(e: AnyEvent, priceOf: PriceOf): RequestUpsert | undefined {
  switch (e.type) {
    case 'chat.requested':
      return { requestId: e.requestId, insert: { ...identity(e, e.data.ctx.receivedAt), ...fromContext(e.data.ctx), outcome: Outcome.Pending } };
    case 'chat.rejected': {
      const d = e.data;
      const known = { user_id: d.user ?? null, requested_model: d.model ?? null };
      return finish(e, d.receivedAt ?? e.at, { outcome: Outcome.Rejected, error_code: d.code, status_code: d.status }, known);
    }
    case 'chat.throttled':
      return finish(e, e.data.receivedAt, { outcome: Outcome.Throttled, error_code: 'rate_limit_exceeded', status_code: Errors.rate_limit_exceeded.status });
    case 'cache.hit': {
      const { answer, ctx } = e.data;
      return finish(
        e,
        ctx.receivedAt,
        { ...cachedAnswer(answer, e.data.kind ?? CacheKind.Exact, e.data.price, priceOf), ...embeddingBill(e.data.embedding, priceOf) },
        fromContext(ctx),
      );
    }
    case 'cache.coalesced': {
      // answered by the request that led its key: billed as a hit (the leader's row has the upstream cost)
      const { answer, ctx } = e.data;
      return finish(e, ctx.receivedAt, cachedAnswer(answer, CacheKind.Coalesced, e.data.price, priceOf), fromContext(ctx));
    }
    case 'cache.missed': {
      // the semantic lookup's embedding call is billed even though the request goes on upstream
      const bill = embeddingBill(e.data.embedding, priceOf);
      if (!bill.embedding_usd) return undefined;
      const { ctx } = e.data;
      return { requestId: e.requestId, insert: { ...identity(e, ctx.receivedAt), ...fromContext(ctx), outcome: Outcome.Pending, ...bill }, update: bill };
    }
    case 'chat.held': {
      const { ctx } = e.data;
      return {
        requestId: e.requestId,
        insert: { ...identity(e, ctx.receivedAt), ...fromContext(ctx), outcome: Outcome.Held },
        update: { outcome: Outcome.Held },
      };
    }
    case 'chat.shed': {
      const status = Errors[e.data.code].status;
      return finish(e, e.data.receivedAt, { outcome: Outcome.Shed, error_code: e.data.code, status_code: status });
    }
    case 'chat.completed': {
      const { answer, ctx } = e.data;
      const { prompt_tokens, completion_tokens } = answer.usage;
      const bill = priced(e.data.price, answer.model, ctx.batch !== undefined, priceOf);
      return finish(
        e,
        ctx.receivedAt,
        {
          outcome: Outcome.Completed,
          model: answer.model,
          deployment: e.data.deployment,
          input_tokens: prompt_tokens,
          output_tokens: completion_tokens,
          cost_usd: costUsd(prompt_tokens, completion_tokens, bill.price),
          price_source: bill.source,
          attempts: e.data.attempts,
          status_code: 200,
          cache_hit: false,
        },
        fromContext(ctx),
      );
    }
    case 'chat.failed': {
      // an upstream's own refusal is recorded with the status the client got
      const status = e.data.upstream?.status ?? e.data.status;
      return finish(e, e.data.receivedAt, { outcome: Outcome.Failed, error_code: e.data.code, status_code: status, attempts: e.data.attempts });
    }
    case 'chat.cancelled': {
      const { usage, ctx } = e.data;
      const bill = priced(e.data.price, e.data.model, ctx.batch !== undefined, priceOf);
      return finish(
        e,
        ctx.receivedAt,
        {
          outcome: Outcome.Cancelled,
          model: e.data.model,
          deployment: e.data.deployment,
          input_tokens: usage.prompt_tokens,
          output_tokens: usage.completion_tokens,
          cost_usd: costUsd(usage.prompt_tokens, usage.completion_tokens, bill.price),
          price_source: bill.source,
          attempts: e.data.attempts,
          error_code: 'request_cancelled',
          cache_hit: false,
        },
        fromContext(ctx),
      );
    }
    case 'chat.routed': {
      // the variant is known from here on; a request that then fails or is shed has no context on
      // its terminal event, so its row learns the variant now
      const { ctx } = e.data;
      if (!ctx.variant) return undefined;
      const variant = { canary: ctx.variant.canary, variant: ctx.variant.name };
      return { requestId: e.requestId, insert: { ...identity(e, ctx.receivedAt), ...fromContext(ctx), outcome: Outcome.Pending }, update: variant };
    }
    case 'chat.admitted':
    case 'cache.stored':
    case 'invoke.attempted':
    case 'invoke.failed':
    case 'circuit.opened':
    case 'circuit.closed':
    case 'degrade.changed':
    case 'event.parked':
    case 'budget.threshold_crossed':
    case 'alert.delivery_attempted':
    case 'result.delivery_attempted':
    case 'key.created':
    case 'key.rotated':
    case 'key.revoked':
    case 'upstream.limits_observed':
    case 'circuit.half_opened':
    case 'deployment.paused':
    case 'canary.rolled_back':
    case 'batch.created':
    case 'batch.validated':
    case 'batch.failed':
    case 'batch.completed':
    case 'batch.cancelled':
    case 'batch.expired':
    case 'upstream_batch.queued':
    case 'upstream_batch.submitted':
    case 'upstream_batch.completed':
      // on the timeline only (a batch's lines are requests of their own, billed as such)
      return undefined;
    default: {
      const _exhaustive: never = e;
      return _exhaustive;
    }
  }
}

interface Bill {
  price: BilledPrice;
  source: PriceSource;
}

/**
 * The price `model`'s tokens are billed at: the one recorded on the event, else (an event from
 * before prices were recorded) the live config's, a batch line's at the model's batch price.
 */
function priced(recorded: BilledPrice | undefined, model: string, batch: boolean, priceOf: PriceOf): Bill {
  if (recorded) return { price: recorded, source: PriceSource.Event };
  const price = priceOf(model);
  return { price: billedPrice(price ? { [model]: { price } } : {}, model, batch), source: PriceSource.Config };
}

/**
 * A cached answer of any kind: nothing was served upstream, so the request cost nothing and
 * saved what the answer would have cost (at the answering model's price when it was served) and its tokens.
 */
function cachedAnswer(answer: Answer, kind: CacheKind, recorded: BilledPrice | undefined, priceOf: PriceOf): RequestPatch {
  const { prompt_tokens, completion_tokens } = answer.usage;
  const bill = priced(recorded, answer.model, false, priceOf);
  return {
    outcome: Outcome.Cached,
    cache_hit: true,
    cache_kind: kind,
    model: answer.model,
    input_tokens: 0,
    output_tokens: 0,
    cost_usd: '0',
    saved_usd: costUsd(prompt_tokens, completion_tokens, bill.price),
    price_source: bill.source,
    saved_tokens: prompt_tokens + completion_tokens,
    status_code: 200,
  };
}

/**
 * The semantic cache's embedding call, billed at the embedding model's input price recorded with
 * it (else the live config's; 0 for a model without one); empty when the event made none, so an
 * existing bill stays. Set, not added: a replayed event bills once.
 */
function embeddingBill(embedding: EmbeddingUse | undefined, priceOf: PriceOf): RequestPatch {
  if (!embedding) return {};
  const tokens = embedding.usage.prompt_tokens;
  return { embedding_tokens: tokens, embedding_usd: costUsd(tokens, 0, priced(embedding.price, embedding.model, false, priceOf).price) };
}

function identity(e: AnyEvent, receivedAt: number) {
  return { request_id: e.requestId, tenant: e.tenant, received_at: new Date(receivedAt) };
}

function fromContext(ctx: RequestContext) {
  const r = ctx.request;
  return {
    user_id: r.user ?? null,
    feature: r.feature ?? null,
    requested_model: r.model,
    front_door: ctx.frontDoor,
    endpoint: r.endpoint,
    stream: r.stream,
    priority: r.priority,
    received_at: new Date(ctx.receivedAt),
    // only when set: a context without it must not clear what chat.routed wrote
    ...(ctx.variant ? { canary: ctx.variant.canary, variant: ctx.variant.name } : {}),
  };
}

/** A terminal event: sets the outcome and how long the request took, creating the row if needed. */
function finish(e: AnyEvent, receivedAt: number, patch: RequestPatch, known: Partial<NewRequest> = {}): RequestUpsert {
  const update: RequestPatch = { ...patch, finished_at: new Date(e.at), latency_ms: Math.max(0, Math.round(e.at - receivedAt)) };
  return { requestId: e.requestId, insert: { ...identity(e, receivedAt), ...known, outcome: Outcome.Pending, ...update }, update };
}

/**
 * The event's data for the timeline: the request context once, on the request's chat.requested
 * row (without the client's body: bulky, and not the ledger's business; the conversation stays
 * in the stream, under its retention), and on chat.admitted what the limiter added to it (the
 * rate-limit state, where the body is). Later events carry the same context again for the stages
 * after them; repeating it on every row took about half of the JSON the ledger parses and stores
 * per request. What the context settles to (settledContext) is on the requests row.
 */
function timelineData(e: AnyEvent): unknown {
  const data = e.data;
  if (e.type === 'chat.requested') {
    const { body: _body, ...rest } = e.data;
    return rest;
  }
  if (!('ctx' in data)) return data;
  const { ctx, ...rest } = data;
  if (e.type !== 'chat.admitted') return rest;
  return {
    ...rest,
    ...(ctx.requestSeq !== undefined ? { requestSeq: ctx.requestSeq } : {}),
    ...(ctx.rateLimit !== undefined ? { rateLimit: ctx.rateLimit } : {}),
  };
}

/**
 * Folds several upserts of one batch into one per request, in order, so a batch writes each
 * request's row once (Postgres refuses to upsert one row twice in a statement, and it saves
 * round trips).
 */
export function mergeUpserts(upserts: RequestUpsert[]): RequestUpsert[] {
  const byId = new Map<string, RequestUpsert>();
  for (const u of upserts) {
    const prev = byId.get(u.requestId);
    if (!prev) {
      byId.set(u.requestId, u);
      continue;
    }
    // after `prev` the row exists, so `u` only applies its update
    const update = prev.update || u.update ? { ...prev.update, ...u.update } : undefined;
    const merged: RequestUpsert = { requestId: u.requestId, insert: { ...prev.insert, ...u.update } };
    byId.set(u.requestId, update ? { ...merged, update } : merged);
  }
  return [...byId.values()];
}
