import { CONTENT_EVENTS, contentOf, parseStored, withContent, withoutContent, type EventReader } from './content.js';
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
  /** `exact`, `semantic` or `coalesced` for a cached answer; null otherwise. */
  cacheKind: string | null;
  /** The canary the request matched and the variant it took (docs/canaries.md); null for none. */
  canary: string | null;
  variant: string | null;
  inputTokens: number;
  outputTokens: number;
  /** USD, unrounded (one request can cost less than the 1e-6 that sums are rounded to). */
  costUsd: number;
  savedUsd: number;
  /** A cached answer's tokens: what the upstream did not serve. */
  savedTokens: number;
  /** The semantic cache's embedding call(s) for this request, billed to the tenant beside costUsd. */
  embeddingTokens: number;
  embeddingUsd: number;
  /**
   * Whether the prompt and answer text are on the timeline: only for a tenant with
   * `ledger.storeContent: true`, read back from the event stream while it retains them.
   */
  content: { shown: boolean; reason: string };
  timeline: TimelineEntry[];
}

/** Where the timeline gets a request's text from, for the tenants that opted in. */
export interface ContentAccess {
  /** Whether the tenant set `ledger.storeContent` (read from the live config). */
  storeContent(tenant: string): boolean;
  /** The event stream; absent: the text is never shown. */
  read?: EventReader;
}

const iso = (d: Date | null | undefined) => (d ? new Date(d).toISOString() : null);

/**
 * One request's row and every event about it, in stream order; undefined when the ledger has
 * neither (unknown id, or not projected yet). The prompt and answer text are withheld unless
 * the request's tenant set `ledger.storeContent` (see content.ts); without `access`, always.
 */
export async function requestReport(db: Db, requestId: string, access?: ContentAccess): Promise<RequestReport | undefined> {
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
  const tenant = r?.tenant ?? events[0]?.tenant ?? null;
  const timeline = events.map((e) => ({
    seq: Number(e.seq),
    type: e.type,
    service: e.service,
    at: iso(e.at)!,
    reason: e.reason,
    // rows written before the ledger stopped storing answers still have them: never served from here
    data: withoutContent(e.type, e.data),
  }));
  const content = await showContent(timeline, requestId, tenant, access);
  return {
    requestId,
    tenant,
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
    cacheKind: r?.cache_kind ?? null,
    canary: r?.canary ?? null,
    variant: r?.variant ?? null,
    inputTokens: Number(r?.input_tokens ?? 0),
    outputTokens: Number(r?.output_tokens ?? 0),
    costUsd: Number(r?.cost_usd ?? 0),
    savedUsd: Number(r?.saved_usd ?? 0),
    savedTokens: Number(r?.saved_tokens ?? 0),
    embeddingTokens: Number(r?.embedding_tokens ?? 0),
    embeddingUsd: Number(r?.embedding_usd ?? 0),
    content,
    timeline,
  };
}

/** Puts the text back on the timeline's rows from the stream, when the tenant opted in. */
async function showContent(timeline: TimelineEntry[], requestId: string, tenant: string | null, access?: ContentAccess): Promise<RequestReport['content']> {
  if (tenant === null || !access?.storeContent(tenant)) {
    return { shown: false, reason: `prompt and answer text are withheld: tenant ${tenant ?? '(unknown)'} does not set ledger.storeContent` };
  }
  if (!access.read) return { shown: false, reason: 'prompt and answer text are withheld: this ledger does not read the event stream' };
  let missing = 0;
  for (const entry of timeline) {
    if (!CONTENT_EVENTS.has(entry.type)) continue;
    const e = parseStored(await access.read(entry.seq));
    const content = e && e.requestId === requestId && e.type === entry.type ? contentOf(e) : undefined;
    if (content) entry.data = withContent(entry.data, content);
    else missing++;
  }
  if (missing > 0)
    return { shown: false, reason: `tenant ${tenant} sets ledger.storeContent, but the event stream no longer holds ${missing} of this request's events` };
  return { shown: true, reason: `tenant ${tenant} sets ledger.storeContent; the text is read from the event stream` };
}
