import { STATIC_FALLBACK } from '@sluice/contracts';
import { SpanAttributes } from '@sluice/telemetry';

/**
 * The ledger's request metrics (docs/metrics.md, Sluice section), decided from one event the
 * projection committed. Pure: the reader (metrics-follow.ts) gives each committed event with what
 * the projection made of its request, and the adapter (metrics.ts) records what this returns.
 */

/** Attribute names of the ledger's metrics; standard names where semconv has one, `sluice.*` otherwise. */
export const MetricAttributes = {
  outcome: 'sluice.outcome',
  tenant: SpanAttributes.tenant,
  /** What the client asked for (`auto`, a tier or a model name), as semconv's GenAI metrics name it. */
  requestModel: SpanAttributes.genAiRequestModel,
  /** The model that answered and was priced. */
  responseModel: SpanAttributes.genAiResponseModel,
  lane: 'sluice.lane',
  variant: 'sluice.variant',
  feature: 'sluice.feature',
  hop: 'sluice.hop',
  cacheKind: 'sluice.cache.kind',
  layer: 'sluice.layer',
  deployment: SpanAttributes.deployment,
  budget: 'sluice.budget',
  consumer: SpanAttributes.messagingConsumerGroup,
  stream: SpanAttributes.messagingDestination,
  state: 'sluice.state',
} as const;

/** The instruments a committed event moves (metrics.ts creates one of each). */
export const Instrument = {
  requests: 'sluice.requests',
  requestDuration: 'sluice.request.duration',
  hopDuration: 'sluice.hop.duration',
  cost: 'sluice.cost',
  cacheHits: 'sluice.cache.hits',
  cacheSavings: 'sluice.cache.savings',
  throttles: 'sluice.throttles',
} as const;
export type Instrument = (typeof Instrument)[keyof typeof Instrument];

/** One value for one instrument: added to a counter, recorded in a histogram. */
export interface Measurement {
  instrument: Instrument;
  value: number;
  attributes: Record<string, string>;
}

/**
 * One event as the ledger committed it (a row of `events`), with its request's row (`requests`)
 * and the request's stage event just before it. Times are epoch ms; USD amounts are the
 * projection's exact decimal strings.
 */
export interface CommittedEvent {
  seq: number;
  type: string;
  tenant: string;
  service: string;
  at: number;
  /** chat.throttled: the layer that refused. */
  layer: string | null;
  /** chat.rejected: the catalogue code. */
  code: string | null;
  /** cache.hit / cache.missed: the model of the embedding the semantic lookup paid for, when it made one. */
  embeddingModel: string | null;
  /** The request's row, read for terminal events and for lookups that paid for an embedding; null otherwise. */
  request: {
    requestedModel: string | null;
    model: string | null;
    deployment: string | null;
    lane: string | null;
    variant: string | null;
    feature: string | null;
    receivedAt: number;
    costUsd: string;
    savedUsd: string;
    embeddingUsd: string;
    cacheKind: string | null;
  } | null;
  /** The request's latest earlier event of a type a stage consumes (STAGE_INPUTS); null when none was seen. */
  previous: { type: string; at: number } | null;
}

/** Event types that end a request, and the outcome each records (the ledger's `Outcome`, plus `degraded`). */
const OUTCOME_OF: Record<string, string> = {
  'chat.completed': 'completed',
  'cache.hit': 'cached',
  'cache.coalesced': 'cached',
  'chat.throttled': 'throttled',
  'chat.rejected': 'rejected',
  'chat.shed': 'shed',
  'chat.failed': 'failed',
  'chat.cancelled': 'cancelled',
};

/**
 * The stages whose time is measured: the event a stage takes from the stream, and the events it
 * emits for it. A coalesced request's cache.coalesced is left out (it is the wait for another
 * request's upstream call, not the cache's work), and so is a held request's chat.routed (the
 * time it was held at degrade level 4).
 */
const HOPS = [
  { hop: 'limiter', service: 'limiter', input: 'chat.requested', outputs: ['chat.admitted', 'chat.throttled', 'chat.rejected'] },
  { hop: 'cache', service: 'cache', input: 'chat.admitted', outputs: ['cache.hit', 'cache.missed'] },
  // the router answers with chat.completed itself at degrade level 3 (the static answer)
  { hop: 'router', service: 'router', input: 'cache.missed', outputs: ['chat.routed', 'chat.shed', 'chat.held', 'chat.completed'] },
  { hop: 'invoker', service: 'invoker', input: 'chat.routed', outputs: ['chat.completed', 'chat.failed', 'chat.cancelled'] },
] as const;

/** Event types a stage consumes: what `CommittedEvent.previous` may be (a held request's chat.held too, so its later routing is no hop). */
export const STAGE_INPUTS: ReadonlySet<string> = new Set([...HOPS.map((h) => h.input), 'chat.held']);

/** Event types that end a request. */
export const TERMINAL_TYPES: ReadonlySet<string> = new Set(Object.keys(OUTCOME_OF));

/** Event types the reader needs: those that move a request metric, and the stage inputs the hops start from. */
export const READ_TYPES: readonly string[] = [...new Set([...TERMINAL_TYPES, ...HOPS.flatMap((h) => h.outputs), ...STAGE_INPUTS])];

/** A budget refusal (the limiter's 429 `insufficient_quota`) counts as a throttle by this layer. */
const BUDGET_LAYER = 'budget';

/**
 * What one committed event adds to the request metrics: a terminal event counts its request (by
 * outcome, tenant, requested model, lane and variant), its duration from ingress's receipt, and
 * its cost, cache hit and savings, or throttle; a stage's output records the hop's duration from
 * the input it answered. A completion answered by the static fallback (degrade level 3) counts as
 * `degraded`, not `completed`.
 *
 * @example
 * measure({ type: 'chat.throttled', tenant: 'acme', layer: 'tenant', previous: { type: 'chat.requested', at: 0 }, at: 2, ... })
 * // [{ instrument: 'sluice.requests', value: 1, attributes: { 'sluice.outcome': 'throttled', ... } }, ..., { instrument: 'sluice.throttles', ... }]
 */
export function measure(e: CommittedEvent): Measurement[] {
  const out: Measurement[] = [];
  const r = e.request;
  const tenant = { [MetricAttributes.tenant]: e.tenant };
  const hop = hopOf(e);
  if (hop) out.push({ instrument: Instrument.hopDuration, value: seconds(e.at - e.previous!.at), attributes: { [MetricAttributes.hop]: hop } });

  const ended = OUTCOME_OF[e.type];
  if (ended) {
    // as the ledger's SLO tells them (slo.ts): the static answer's deployment
    const outcome = e.type === 'chat.completed' && r?.deployment === STATIC_FALLBACK ? 'degraded' : ended;
    const lane = present({ [MetricAttributes.lane]: r?.lane });
    out.push({
      instrument: Instrument.requests,
      value: 1,
      attributes: {
        [MetricAttributes.outcome]: outcome,
        ...tenant,
        ...present({ [MetricAttributes.requestModel]: r?.requestedModel, [MetricAttributes.variant]: r?.variant }),
        ...lane,
      },
    });
    if (r)
      out.push({
        instrument: Instrument.requestDuration,
        value: seconds(e.at - r.receivedAt),
        attributes: { [MetricAttributes.outcome]: outcome, ...tenant, ...lane },
      });
  }

  if (r && (e.type === 'chat.completed' || e.type === 'chat.cancelled')) out.push(cost(tenant, r, r.model, r.costUsd));
  // the semantic lookup's embedding call, billed to the request whether or not it found an answer
  if (r && e.embeddingModel) out.push(cost(tenant, r, e.embeddingModel, r.embeddingUsd));
  if (r && (e.type === 'cache.hit' || e.type === 'cache.coalesced') && r.cacheKind) {
    const kind = { [MetricAttributes.cacheKind]: r.cacheKind, ...tenant };
    out.push({ instrument: Instrument.cacheHits, value: 1, attributes: kind });
    out.push({ instrument: Instrument.cacheSavings, value: Number(r.savedUsd), attributes: kind });
  }
  const layer = e.type === 'chat.throttled' ? e.layer : e.type === 'chat.rejected' && e.code === 'insufficient_quota' ? BUDGET_LAYER : null;
  if (layer) out.push({ instrument: Instrument.throttles, value: 1, attributes: { [MetricAttributes.layer]: layer, ...tenant } });
  return out;
}

function cost(tenant: Record<string, string>, r: NonNullable<CommittedEvent['request']>, model: string | null, usd: string): Measurement {
  return {
    instrument: Instrument.cost,
    value: Number(usd),
    attributes: {
      ...tenant,
      ...present({ [MetricAttributes.requestModel]: r.requestedModel, [MetricAttributes.responseModel]: model, [MetricAttributes.feature]: r.feature }),
    },
  };
}

/** The hop an event ends, when it is a stage's answer to the input before it. */
function hopOf(e: CommittedEvent): string | undefined {
  if (!e.previous) return undefined;
  return HOPS.find((h) => h.service === e.service && h.input === e.previous!.type && (h.outputs as readonly string[]).includes(e.type))?.hop;
}

/** ms to seconds; never negative (events are stamped by different processes' clocks). */
const seconds = (ms: number) => Math.max(0, ms) / 1000;

/** The attributes that have a value (Prometheus shows an absent label and an empty one alike). */
function present(attrs: Record<string, string | null | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(attrs).filter((kv): kv is [string, string] => typeof kv[1] === 'string' && kv[1] !== ''));
}
