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
 * Groups events read from the stream, one at a time as they are read (any order within a request
 * is fine; the stream's order is the usual one), into requests and state changes. Only the events
 * the replay reads are kept, and a request's later events share its `chat.requested`'s
 * `ctx.request` (the replay reads the request's facts from that event alone): a request is held
 * in a few of its events' envelopes, not all of them.
 *
 * @example
 * const rec = new RecordingBuilder();
 * for (const e of events) rec.add(e);
 * rec.finish(Date.parse('2026-11-30'), Date.parse('2026-12-01')).requests.length // received on 2026-11-30 (UTC)
 */
export class RecordingBuilder {
  private readonly byId = new Map<string, Partial<RecordedRequest> & { requestId: string; tenant: string }>();
  private readonly changes: StateChange[] = [];
  private initialDegradeLevel: number | undefined;

  add(event: AnyEvent): void {
    const e = this.slim(event);
    switch (e.type) {
      case 'chat.requested':
        this.of(e).requested ??= e;
        break;
      case 'chat.admitted':
        this.of(e).admitted ??= e;
        break;
      case 'cache.missed':
        this.of(e).missed ??= e;
        break;
      case 'chat.held':
        this.of(e).held ??= e;
        break;
      case 'chat.routed':
        this.of(e).routed = e;
        break;
      case 'degrade.changed':
        this.initialDegradeLevel ??= e.data.from;
        this.changes.push({ at: e.at, kind: 'degrade', level: e.data.to });
        break;
      case 'circuit.opened':
        this.changes.push({ at: e.at, kind: 'circuit', deployment: e.data.deployment, open: true });
        break;
      case 'circuit.half_opened':
      case 'circuit.closed':
        this.changes.push({ at: e.at, kind: 'circuit', deployment: e.data.deployment, open: false });
        break;
      case 'deployment.paused':
        this.changes.push({ at: e.at, kind: 'paused', deployment: e.data.deployment, until: e.data.until });
        break;
      case 'upstream.limits_observed':
        this.changes.push({ at: e.at, kind: 'limits', observed: e.data });
        break;
      case 'canary.rolled_back':
        this.changes.push({ at: e.at, kind: 'rollback', canary: e.data.canary, entry: { at: e.at, variant: e.data.variant, reason: e.reason } });
        break;
      default:
        if (TERMINAL.has(e.type) && e.requestId) this.of(e).terminal ??= e as Terminal;
    }
  }

  /**
   * The requests received in [from, to), ordered by arrival, and the changes, ordered by time.
   * Events of requests received outside the window are left out; a request's first terminal
   * event is its end (a duplicate from a redelivery changes nothing).
   */
  finish(from: number, to: number): Recording {
    const requests = [...this.byId.values()]
      .filter((r): r is RecordedRequest => r.requested !== undefined)
      .filter((r) => r.requested.data.ctx.receivedAt >= from && r.requested.data.ctx.receivedAt < to)
      .sort(
        (a, b) => a.requested.data.ctx.receivedAt - b.requested.data.ctx.receivedAt || (a.requestId < b.requestId ? -1 : a.requestId > b.requestId ? 1 : 0),
      );
    const changes = [...this.changes].sort((a, b) => a.at - b.at);
    return { from, to, requests, changes, initialDegradeLevel: this.initialDegradeLevel ?? 0 };
  }

  private of(e: AnyEvent) {
    let r = this.byId.get(e.requestId);
    if (!r) this.byId.set(e.requestId, (r = { requestId: e.requestId, tenant: e.tenant }));
    return r;
  }

  /** The event, or a copy of it that shares its request's `ctx.request` (the one read is then garbage). */
  private slim(e: AnyEvent): AnyEvent {
    const shared = e.type === 'chat.requested' ? undefined : this.byId.get(e.requestId)?.requested?.data.ctx.request;
    if (!shared || !('ctx' in e.data)) return e;
    return { ...e, data: { ...e.data, ctx: { ...e.data.ctx, request: shared } } } as AnyEvent;
  }
}

/**
 * Groups events into the requests received in [from, to) and the state changes (`RecordingBuilder`). Pure.
 *
 * @example
 * const rec = recordingOf(events, Date.parse('2026-11-30'), Date.parse('2026-12-01'));
 */
export function recordingOf(events: readonly AnyEvent[], from: number, to: number): Recording {
  const builder = new RecordingBuilder();
  for (const e of events) builder.add(e);
  return builder.finish(from, to);
}

/** The recorded upstream answer of a request: its completion (not the static fallback's) or its cancellation. */
export function upstreamEnd(r: RecordedRequest): SluiceEvent<'chat.completed'> | SluiceEvent<'chat.cancelled'> | SluiceEvent<'chat.failed'> | undefined {
  const t = r.terminal;
  if (t?.type === 'chat.completed') return t.data.deployment === STATIC_FALLBACK ? undefined : t;
  if (t?.type === 'chat.cancelled' || t?.type === 'chat.failed') return t;
  return undefined;
}
