import { describe, expect, it } from 'vitest';
import { mergeUpserts, project, type Projection } from './project.js';
import { billedPrice, makeEvent, STATIC_PRICE, type AnyEvent, type BilledPrice } from '@sluice/contracts';
import { admitted, chatRequest, requestContext, routed } from '@sluice/contracts/testing';
import {
  T0,
  cachedRequest,
  circuitOpened,
  coalescedRequest,
  completedRequest,
  embeddingUse,
  failedRequest,
  priceOf,
  rejectedAtIngress,
  requested,
  semanticHitRequest,
  shedRequest,
  throttledRequest,
} from './fixtures.js';

const r = { id: 'r1', tenant: 'acme', at: T0 };
const projectAll = (events: ReturnType<typeof completedRequest>): Projection[] => events.map((e, i) => project(i + 1, e, priceOf));
const last = <T>(xs: T[]) => xs[xs.length - 1]!;

describe('project', () => {
  it('given chat.requested, creates a pending row and leaves an existing one alone', () => {
    const p = project(1, requested(r), priceOf);
    expect(p.request?.insert).toMatchObject({
      request_id: 'r1',
      tenant: 'acme',
      outcome: 'pending',
      user_id: 'u1',
      feature: 'chat',
      requested_model: 'auto',
      front_door: 'http',
      priority: 'standard',
      stream: false,
    });
    expect(p.request?.insert.received_at).toEqual(new Date(T0));
    expect(p.request?.update).toBeUndefined();
  });

  it("keeps the client's body off the timeline row", () => {
    const event = requested(r);
    const p = project(1, event, priceOf);
    const data = p.event.data as Record<string, unknown>;
    expect(data.body).toBeUndefined();
    expect(data.ctx).toEqual((event as { data: { ctx: unknown } }).data.ctx);
    expect(p.event).toMatchObject({ seq: 1, request_id: 'r1', type: 'chat.requested', service: 'ingress', tenant: 'acme' });
  });

  it("keeps the request context on chat.requested's row only; chat.admitted's keeps what the limiter added", () => {
    const rateLimit = {
      requests: { limit: 100, remaining: 99, resetMs: 600 },
      tokens: { limit: 10_000, remaining: 9_990, resetMs: 60 },
    };
    const ctx = requestContext(chatRequest(), { requestSeq: 7, rateLimit });
    const admittedRow = project(2, admitted('r1', 'acme', { ctx, estimatedTokens: 12 }), priceOf).event.data;
    expect(admittedRow).toEqual({ estimatedTokens: 12, requestSeq: 7, rateLimit });
    const routedEvent = routed('r1', 'acme', { ctx });
    const routedRow = project(3, routedEvent, priceOf).event.data as Record<string, unknown>;
    expect(routedRow.ctx).toBeUndefined();
    const { ctx: _ctx, ...rest } = routedEvent.data;
    expect(routedRow).toEqual(rest);
  });

  it('given chat.cancelled, bills what was streamed and records the outcome', () => {
    const e = makeEvent(
      'chat.cancelled',
      { requestId: 'r1', tenant: 'acme', service: 'invoker', at: T0 + 300, reason: 'client left' },
      {
        ctx: requestContext(chatRequest({ endpoint: 'chat.completions' }), { receivedAt: T0 }),
        model: 'gpt-4o-mini',
        deployment: 'd1',
        attempts: 1,
        usage: { prompt_tokens: 1000, completion_tokens: 500, total_tokens: 1500 },
        counted: true,
      },
    );
    const p = project(2, e, priceOf);
    expect(p.request?.update).toMatchObject({
      outcome: 'cancelled',
      model: 'gpt-4o-mini',
      input_tokens: 1000,
      output_tokens: 500,
      error_code: 'request_cancelled',
      latency_ms: 300,
    });
    expect(Number(p.request?.update?.cost_usd)).toBeGreaterThan(0);
    expect(p.request?.insert.endpoint).toBe('chat.completions');
  });

  it('given chat.failed with an upstream refusal, records the status the client got', () => {
    const e = makeEvent(
      'chat.failed',
      { requestId: 'r1', tenant: 'acme', service: 'invoker', at: T0 + 30, reason: 'refused' },
      {
        code: 'upstream_rejected',
        status: 400,
        message: 'too long',
        attempts: 1,
        receivedAt: T0,
        upstream: { status: 422, type: 'invalid_request_error', code: 'context_length_exceeded', param: 'messages', message: 'too long' },
      },
    );
    expect(project(3, e, priceOf).request?.update).toMatchObject({ outcome: 'failed', error_code: 'upstream_rejected', status_code: 422 });
  });

  it('given chat.completed, sets model, usage, cost from the price and latency from receipt', () => {
    const p = last(projectAll(completedRequest(r, 'gpt-4o-mini', 1000, 500, 250)));
    expect(p.request?.update).toMatchObject({
      outcome: 'completed',
      model: 'gpt-4o-mini',
      deployment: 'sim',
      input_tokens: 1000,
      output_tokens: 500,
      cost_usd: '0.00045',
      attempts: 1,
      status_code: 200,
      latency_ms: 250,
      cache_hit: false,
    });
    expect(p.request?.update?.finished_at).toEqual(new Date(T0 + 250));
  });

  it('given chat.completed of a batch line, bills it at the batch price: half the price unless configured', () => {
    const events = completedRequest(r, 'gpt-4o-mini', 1000, 500, 250);
    const done = last(events);
    if (done.type !== 'chat.completed') throw new Error('the fixture ends with chat.completed');
    const line = { ...done, data: { ...done.data, ctx: { ...done.data.ctx, batch: { id: 'batch_x', customId: 'a' } } } };
    expect(project(9, line, priceOf).request?.update?.cost_usd).toBe('0.000225');
    const priced = (m: string) =>
      m === 'gpt-4o-mini' ? { inputPerMTok: 0.15, outputPerMTok: 0.6, batchInputPerMTok: 0.1, batchOutputPerMTok: 0.2 } : undefined;
    expect(project(9, line, priced).request?.update?.cost_usd).toBe('0.0002');
  });

  it('keeps batch events on the timeline only', () => {
    const e = makeEvent('batch.validated', { requestId: 'batch_x', tenant: 'acme', service: 'ingress', at: T0, reason: '2 lines' }, { lines: 2, model: null });
    expect(project(1, e, priceOf)).toEqual({ event: expect.objectContaining({ type: 'batch.validated', request_id: 'batch_x' }) as object });
  });

  it('given chat.completed for a model without a price (static fallback), costs 0', () => {
    const p = last(projectAll(completedRequest(r, 'static-fallback', 10, 10, 5)));
    expect(p.request?.update?.cost_usd).toBe('0');
  });

  it('given cache.hit, costs nothing and records the saving', () => {
    const p = last(projectAll(cachedRequest(r, 'gpt-4o', 1000, 100, 3)));
    expect(p.request?.update).toMatchObject({
      outcome: 'cached',
      cache_hit: true,
      model: 'gpt-4o',
      input_tokens: 0,
      output_tokens: 0,
      cost_usd: '0',
      saved_usd: '0.0035',
      latency_ms: 3,
    });
  });

  it('given an exact cache.hit, marks it exact and keeps the tokens it saved', () => {
    const p = last(projectAll(cachedRequest(r, 'gpt-4o-mini', 1000, 500, 3)));
    expect(p.request?.update).toMatchObject({ cache_kind: 'exact', saved_tokens: 1500, saved_usd: '0.00045' });
    expect(p.request?.update?.embedding_usd).toBeUndefined();
  });

  it('given a semantic cache.hit, costs nothing, saves the answer, and bills the embedding at the embedding price', () => {
    const events = semanticHitRequest(r, 'gpt-4o', 1000, 100, 12, { matched: 'r0', similarity: 0.97, embeddingTokens: 50 });
    const p = last(projectAll(events));
    expect(p.request?.update).toMatchObject({
      outcome: 'cached',
      cache_hit: true,
      cache_kind: 'semantic',
      model: 'gpt-4o',
      cost_usd: '0',
      saved_usd: '0.0035',
      saved_tokens: 1100,
      // 50 tokens at 0.02 USD per million
      embedding_tokens: 50,
      embedding_usd: '0.000001',
      latency_ms: 12,
    });
    // the timeline keeps how it matched, not the answer
    expect(p.event.data).toMatchObject({ kind: 'semantic', similarity: 0.97, matchedRequestId: 'r0', embedding: { model: 'text-embedding-3-small' } });
    expect((p.event.data as { answer: Record<string, unknown> }).answer.body).toBeUndefined();
  });

  it('given cache.coalesced, is a cached answer: costs nothing, saves what the leader paid for, keeps the leader on the timeline', () => {
    const p = last(projectAll(coalescedRequest(r, 'gpt-4o-mini', 1000, 500, 40, 'leader-1')));
    expect(p.request?.update).toMatchObject({
      outcome: 'cached',
      cache_hit: true,
      cache_kind: 'coalesced',
      cost_usd: '0',
      saved_usd: '0.00045',
      saved_tokens: 1500,
      latency_ms: 40,
    });
    expect(p.request?.update?.embedding_usd).toBeUndefined();
    expect(p.event.data).toMatchObject({ leaderRequestId: 'leader-1', waitedMs: 39 });
    expect((p.event.data as { answer: Record<string, unknown> }).answer.body).toBeUndefined();
  });

  it('given a semantic miss that paid for an embedding, bills it on the row and keeps it through the completion', () => {
    const ps = projectAll(completedRequest(r, 'gpt-4o-mini', 1000, 500, 250, embeddingUse(2000)));
    const miss = ps[2]!;
    expect(miss.event.type).toBe('cache.missed');
    expect(miss.request?.update).toEqual({ embedding_tokens: 2000, embedding_usd: '0.00004' });
    expect(miss.request?.insert).toMatchObject({ request_id: 'r1', outcome: 'pending', embedding_usd: '0.00004' });
    // the completion is billed as before; the embedding is beside it, not in it
    const merged = mergeUpserts(ps.flatMap((p) => (p.request ? [p.request] : [])));
    expect(merged[0]!.insert).toMatchObject({ outcome: 'completed', cost_usd: '0.00045', embedding_tokens: 2000, embedding_usd: '0.00004' });
    expect(merged[0]!.insert.cache_kind).toBeUndefined();
  });

  it('given a miss without an embedding (exact cache only), changes no row', () => {
    expect(projectAll(completedRequest(r, 'gpt-4o-mini', 1, 1, 10))[2]!.request).toBeUndefined();
  });

  it('given an embedding model without a price, bills its tokens at 0 USD', () => {
    const hit = semanticHitRequest(r, 'gpt-4o', 1, 1, 1, { matched: 'r0', similarity: 0.95, embeddingTokens: 7 }).at(-1)!;
    const p = project(3, hit, (m) => (m === 'gpt-4o' ? priceOf(m) : undefined));
    expect(p.request?.update).toMatchObject({ embedding_tokens: 7, embedding_usd: '0' });
  });

  it('given terminal refusals, records outcome, code and status', () => {
    expect(last(projectAll(throttledRequest(r, 2))).request?.update).toMatchObject({
      outcome: 'throttled',
      error_code: 'rate_limit_exceeded',
      status_code: 429,
      latency_ms: 2,
    });
    expect(last(projectAll(shedRequest(r, 4))).request?.update).toMatchObject({ outcome: 'shed', error_code: 'service_busy', status_code: 503 });
    expect(last(projectAll(failedRequest(r, 90))).request?.update).toMatchObject({
      outcome: 'failed',
      error_code: 'upstream_failed',
      status_code: 502,
      attempts: 3,
      latency_ms: 90,
    });
  });

  it('given an ingress rejection without chat.requested, creates the row from what the rejection knew', () => {
    const p = project(1, rejectedAtIngress(r)[0]!, priceOf);
    expect(p.request?.insert).toMatchObject({
      request_id: 'r1',
      tenant: 'acme',
      outcome: 'rejected',
      error_code: 'invalid_api_key',
      status_code: 401,
      requested_model: 'gpt-4o',
      latency_ms: 1,
    });
  });

  it('puts events of no request on the timeline only', () => {
    const p = project(9, circuitOpened(T0), priceOf);
    expect(p.request).toBeUndefined();
    expect(p.event).toMatchObject({ seq: 9, request_id: null, type: 'circuit.opened', tenant: '_system' });
  });

  it('changes no request for intermediate events', () => {
    const ps = projectAll(completedRequest(r, 'gpt-4o-mini', 1, 1, 10));
    expect(ps.slice(1, -1).map((p) => p.request)).toEqual([undefined, undefined, undefined, undefined]);
  });
});

describe('project with recorded prices', () => {
  /** Today's config: every price ten times the one the events were answered at. */
  const tenfold = (m: string) => {
    const p = priceOf(m);
    return p && { inputPerMTok: p.inputPerMTok * 10, outputPerMTok: p.outputPerMTok * 10 };
  };
  const MINI = { inputPerMTok: 0.15, outputPerMTok: 0.6, source: 'config' } as const satisfies BilledPrice;
  /** The request's terminal event with `price` recorded on its data. */
  const stamped = (events: AnyEvent[], price: BilledPrice): AnyEvent => {
    const e = last(events);
    return { ...e, data: { ...e.data, price } } as AnyEvent;
  };

  it('given chat.completed with its price, bills at that price whatever the config says now, and says so', () => {
    const e = stamped(completedRequest(r, 'gpt-4o-mini', 1000, 500, 250), MINI);
    expect(project(6, e, tenfold).request?.update).toMatchObject({ cost_usd: '0.00045', price_source: 'event' });
  });

  it('given chat.completed without a price (recorded before prices were), bills at the live config and says so', () => {
    const e = last(completedRequest(r, 'gpt-4o-mini', 1000, 500, 250));
    expect(project(6, e, tenfold).request?.update).toMatchObject({ cost_usd: '0.0045', price_source: 'config' });
  });

  it('given a batch line with its batch price recorded, bills at it (not halved again)', () => {
    const line = stamped(completedRequest(r, 'gpt-4o-mini', 1000, 500, 250), billedPrice({ 'gpt-4o-mini': { price: MINI } }, 'gpt-4o-mini', true));
    const withBatch = { ...line, data: { ...line.data, ctx: { ...(line.data as { ctx: object }).ctx, batch: { id: 'batch_x', customId: 'a' } } } } as AnyEvent;
    expect(project(6, withBatch, tenfold).request?.update).toMatchObject({ cost_usd: '0.000225', price_source: 'event' });
  });

  it("given the router's static answer, bills 0 at its recorded static price", () => {
    const e = stamped(completedRequest(r, 'static-fallback', 0, 0, 2), STATIC_PRICE);
    expect(project(6, e, tenfold).request?.update).toMatchObject({ cost_usd: '0', price_source: 'event' });
  });

  it('given cache hits and coalesced answers with their price, saves at that price; an embedding at its own recorded price', () => {
    const GPT4O = { inputPerMTok: 2.5, outputPerMTok: 10, source: 'config' } as const;
    expect(project(3, stamped(cachedRequest(r, 'gpt-4o', 1000, 100, 3), GPT4O), tenfold).request?.update).toMatchObject({
      saved_usd: '0.0035',
      price_source: 'event',
    });
    expect(project(3, stamped(coalescedRequest(r, 'gpt-4o', 1000, 100, 3, 'r0'), GPT4O), tenfold).request?.update).toMatchObject({
      saved_usd: '0.0035',
      price_source: 'event',
    });
    const hit = last(semanticHitRequest(r, 'gpt-4o', 1000, 100, 3, { matched: 'r0', similarity: 0.95, embeddingTokens: 1000 }));
    if (hit.type !== 'cache.hit' || !hit.data.embedding) throw new Error('the fixture ends with a semantic cache.hit');
    const embedding = { ...hit.data.embedding, price: { inputPerMTok: 0.02, outputPerMTok: 0, source: 'config' as const } };
    const both = { ...hit, data: { ...hit.data, price: GPT4O, embedding } };
    expect(project(3, both, tenfold).request?.update).toMatchObject({ saved_usd: '0.0035', embedding_usd: '0.00002', price_source: 'event' });
    // without the embedding's price, the live config's (ten times)
    expect(project(3, { ...both, data: { ...both.data, embedding: hit.data.embedding } }, tenfold).request?.update?.embedding_usd).toBe('0.0002');
  });

  it('given chat.cancelled with its price, bills what was streamed at it', () => {
    const e = makeEvent(
      'chat.cancelled',
      { requestId: 'r1', tenant: 'acme', service: 'invoker', at: T0 + 300, reason: 'client left' },
      {
        ctx: requestContext(chatRequest(), { receivedAt: T0 }),
        model: 'gpt-4o-mini',
        deployment: 'd1',
        attempts: 1,
        usage: { prompt_tokens: 1000, completion_tokens: 500, total_tokens: 1500 },
        counted: false,
        price: MINI,
      },
    );
    expect(project(2, e, tenfold).request?.update).toMatchObject({ cost_usd: '0.00045', price_source: 'event' });
  });
});

describe('mergeUpserts', () => {
  it('folds a request whose whole life is in one batch into one insert', () => {
    const ups = projectAll(completedRequest(r, 'gpt-4o-mini', 1000, 500, 250)).flatMap((p) => (p.request ? [p.request] : []));
    const merged = mergeUpserts(ups);
    expect(merged).toHaveLength(1);
    expect(merged[0]!.insert).toMatchObject({ request_id: 'r1', user_id: 'u1', outcome: 'completed', cost_usd: '0.00045' });
    // if the row existed already, only the terminal change applies
    expect(merged[0]!.update).toMatchObject({ outcome: 'completed' });
    expect(merged[0]!.update?.user_id).toBeUndefined();
  });

  it("keeps each insert row carrying its update's values (the batch writer relies on it)", () => {
    const events = [
      ...completedRequest(r, 'gpt-4o', 10, 10, 5),
      ...rejectedAtIngress({ ...r, id: 'r2' }),
      ...cachedRequest({ ...r, id: 'r3' }, 'gpt-4o', 1, 1, 1),
    ];
    const ups = events.map((e, i) => project(i + 1, e, priceOf)).flatMap((p) => (p.request ? [p.request] : []));
    for (const u of [...ups, ...mergeUpserts(ups), ...mergeUpserts(ups.slice(2))]) {
      for (const [k, v] of Object.entries(u.update ?? {})) expect(u.insert[k as keyof typeof u.insert], k).toEqual(v);
    }
  });

  it('keeps requests apart and a late chat.requested does not reopen a finished one', () => {
    const a = projectAll(throttledRequest(r, 2));
    const b = projectAll(shedRequest({ ...r, id: 'r2' }, 2));
    const late = project(99, requested(r), priceOf);
    const merged = mergeUpserts([...a, ...b, late].flatMap((p) => (p.request ? [p.request] : [])));
    expect(merged.map((u) => [u.requestId, u.insert.outcome, u.update?.outcome])).toEqual([
      ['r1', 'throttled', 'throttled'],
      ['r2', 'shed', 'shed'],
    ]);
  });
});
