import { STATIC_FALLBACK, type AnyEvent, type EventDataOf, type SluiceEvent } from '@sluice/contracts';
import type { CanaryRollbacks } from '@sluice/bus';

/** How a recorded request ended: its terminal event (none yet: still pending, or held). */
type Terminal = Extract<
  AnyEvent,
  { type: 'chat.rejected' | 'chat.throttled' | 'cache.hit' | 'cache.coalesced' | 'chat.shed' | 'chat.completed' | 'chat.failed' | 'chat.cancelled' }
>;

/** One request of the window, as the stream recorded it: the events the replay reads, by stage. */
export interface RecordedRequest {
  requestId: string;
  tenant: string;
  /** The one event with the body and the request's facts (`ctx.request`); its `ctx.receivedAt` orders the replay. */
  requested: SluiceEvent<'chat.requested'>;
  admitted?: SluiceEvent<'chat.admitted'>;
  missed?: SluiceEvent<'cache.missed'>;
  held?: SluiceEvent<'chat.held'>;
  /** The last routing (a held request is routed again when released). */
  routed?: SluiceEvent<'chat.routed'>;
  terminal?: Terminal;
}

/** A change of the gateway's state the replay takes as recorded, at its time (epoch ms). */
export type StateChange =
  | { at: number; kind: 'degrade'; level: number }
  | { at: number; kind: 'circuit'; deployment: string; open: boolean }
  | { at: number; kind: 'paused'; deployment: string; until: number }
  | { at: number; kind: 'rollback'; canary: string; entry: CanaryRollbacks[string] }
  /** What an upstream's answer said of its rate limits (`upstream.limits_observed`): the global limit learns from it. */
  | { at: number; kind: 'limits'; observed: EventDataOf<'upstream.limits_observed'> };

/** The window's requests and the state changes around them, as the replay takes them. */
export interface Recording {
  /** The window, epoch ms: requests received in [from, to). */
  from: number;
  to: number;
  /** Ordered by `ctx.receivedAt`, then by request id (a stable order for requests received in one ms). */
  requests: RecordedRequest[];
  /** Ordered by time. */
  changes: StateChange[];
  /** The degrade level in force at `from`: the first change's `from`, or 0 when none was recorded. */
  initialDegradeLevel: number;
}

const TERMINAL = new Set<string>([
  'chat.rejected',
  'chat.throttled',
  'cache.hit',
  'cache.coalesced',
  'chat.shed',
  'chat.completed',
  'chat.failed',
  'chat.cancelled',
]);

/**
 * Groups the events read from the stream (any order within a request is fine; the stream's order
 * is the usual one) into the requests received in [from, to) and the state changes. Events of
 * requests received outside the window are left out; a request's first terminal event is its
 * end (a duplicate from a redelivery changes nothing). Pure.
 *
 * @example
 * const rec = recordingOf(events, Date.parse('2026-11-30'), Date.parse('2026-12-01'));
 * rec.requests.length // requests received on 2026-11-30 (UTC)
 */
export function recordingOf(events: readonly AnyEvent[], from: number, to: number): Recording {
  const byId = new Map<string, Partial<RecordedRequest> & { requestId: string }>();
  const changes: StateChange[] = [];
  let initialDegradeLevel: number | undefined;
  const of = (e: AnyEvent) => {
    let r = byId.get(e.requestId);
    if (!r) byId.set(e.requestId, (r = { requestId: e.requestId, tenant: e.tenant }));
    return r;
  };
  for (const e of events) {
    switch (e.type) {
      case 'chat.requested':
        of(e).requested ??= e;
        break;
      case 'chat.admitted':
        of(e).admitted ??= e;
        break;
      case 'cache.missed':
        of(e).missed ??= e;
        break;
      case 'chat.held':
        of(e).held ??= e;
        break;
      case 'chat.routed':
        of(e).routed = e;
        break;
      case 'degrade.changed':
        initialDegradeLevel ??= e.data.from;
        changes.push({ at: e.at, kind: 'degrade', level: e.data.to });
        break;
      case 'circuit.opened':
        changes.push({ at: e.at, kind: 'circuit', deployment: e.data.deployment, open: true });
        break;
      case 'circuit.half_opened':
      case 'circuit.closed':
        changes.push({ at: e.at, kind: 'circuit', deployment: e.data.deployment, open: false });
        break;
      case 'deployment.paused':
        changes.push({ at: e.at, kind: 'paused', deployment: e.data.deployment, until: e.data.until });
        break;
      case 'upstream.limits_observed':
        changes.push({ at: e.at, kind: 'limits', observed: e.data });
        break;
      case 'canary.rolled_back':
        changes.push({ at: e.at, kind: 'rollback', canary: e.data.canary, entry: { at: e.at, variant: e.data.variant, reason: e.reason } });
        break;
      default:
        if (TERMINAL.has(e.type) && e.requestId) of(e).terminal ??= e as Terminal;
    }
  }
  const requests = [...byId.values()]
    .filter((r): r is RecordedRequest => r.requested !== undefined)
    .filter((r) => r.requested.data.ctx.receivedAt >= from && r.requested.data.ctx.receivedAt < to)
    .sort((a, b) => a.requested.data.ctx.receivedAt - b.requested.data.ctx.receivedAt || (a.requestId < b.requestId ? -1 : a.requestId > b.requestId ? 1 : 0));
  changes.sort((a, b) => a.at - b.at);
  return { from, to, requests, changes, initialDegradeLevel: initialDegradeLevel ?? 0 };
}

/** The recorded upstream answer of a request: its completion (not the static fallback's) or its cancellation. */
export function upstreamEnd(r: RecordedRequest): SluiceEvent<'chat.completed'> | SluiceEvent<'chat.cancelled'> | SluiceEvent<'chat.failed'> | undefined {
  const t = r.terminal;
  if (t?.type === 'chat.completed') return t.data.deployment === STATIC_FALLBACK ? undefined : t;
  if (t?.type === 'chat.cancelled' || t?.type === 'chat.failed') return t;
  return undefined;
}
