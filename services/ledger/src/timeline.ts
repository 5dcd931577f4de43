import type { Db } from './db.js';

interface TimelineEntry {
  seq: number;
  type: string;
  service: string;
  at: string;
  reason: string;
  data: unknown;
}

export interface RequestReport {
  requestId: string;
  tenant: string | null;
  userId: string | null;
  feature: string | null;
  outcome: string | null;
  requestedModel: string | null;
  model: string | null;
  deployment: string | null;
  frontDoor: string | null;
  stream: boolean | null;
  priority: string | null;
  receivedAt: string | null;
  finishedAt: string | null;
  latencyMs: number | null;
  errorCode: string | null;
  statusCode: number | null;
  attempts: number | null;
  cacheHit: boolean;
  inputTokens: number;
  outputTokens: number;
  /** USD, unrounded (one request can cost less than the 1e-6 that sums are rounded to). */
  costUsd: number;
  savedUsd: number;
  timeline: TimelineEntry[];
}

const iso = (d: Date | null | undefined) => (d ? new Date(d).toISOString() : null);

/**
 * One request's row and every event about it, in stream order; undefined when the ledger has
 * neither (unknown id, or not projected yet).
 */
export async function requestReport(db: Db, requestId: string): Promise<RequestReport | undefined> {
  // events first, then the row: one batch writes both in one transaction, and two queries in
  // parallel (two pooled connections) could see the events after that commit and the row before
  // it; read in this order, the row is never older than the timeline shown with it
  const events = await db
    .selectFrom('events')
    .select(['seq', 'type', 'service', 'at', 'reason', 'data', 'tenant'])
    .where('request_id', '=', requestId)
    .orderBy('seq')
    .execute();
  const r = await db.selectFrom('requests').selectAll().where('request_id', '=', requestId).executeTakeFirst();
  if (!r && events.length === 0) return undefined;
  return {
    requestId,
    tenant: r?.tenant ?? events[0]?.tenant ?? null,
    userId: r?.user_id ?? null,
    feature: r?.feature ?? null,
    outcome: r?.outcome ?? null,
    requestedModel: r?.requested_model ?? null,
    model: r?.model ?? null,
    deployment: r?.deployment ?? null,
    frontDoor: r?.front_door ?? null,
    stream: r?.stream ?? null,
    priority: r?.priority ?? null,
    receivedAt: iso(r?.received_at),
    finishedAt: iso(r?.finished_at),
    latencyMs: r?.latency_ms ?? null,
    errorCode: r?.error_code ?? null,
    statusCode: r?.status_code ?? null,
    attempts: r?.attempts ?? null,
    cacheHit: r?.cache_hit ?? false,
    inputTokens: Number(r?.input_tokens ?? 0),
    outputTokens: Number(r?.output_tokens ?? 0),
    costUsd: Number(r?.cost_usd ?? 0),
    savedUsd: Number(r?.saved_usd ?? 0),
    timeline: events.map((e) => ({ seq: Number(e.seq), type: e.type, service: e.service, at: iso(e.at)!, reason: e.reason, data: e.data })),
  };
}
