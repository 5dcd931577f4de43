import type { SluiceConfig, SluiceEvent } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import { BACKLOG_POLL_MS, decideAdmission, limitsOf, type Bound } from './overload.js';
import type { BacklogReading } from './overload-backlog.js';

/** A request let in (release its place once it is answered, exactly once), or shed. */
export type Place = { kind: 'admitted'; release: () => void } | { kind: 'shed'; bound: Bound; message: string; retryAfterMs: number };

/**
 * Overload shedding for one ingress process (docs/input-bounds.md, Overload): both doors take a
 * place before a request goes in, and a request that finds no place is answered 503
 * `service_busy` at once. Memory stays bounded: nothing waits here.
 */
export interface OverloadGate {
  /** A place for one request, or why there is none (`decideAdmission` on the live config). */
  enter(now: number): Place;
  /** Requests of this process let in and not yet released. */
  inFlight(): number;
  /** Whether the backlog is over `ingress.maxBacklog` now (the batch runner submits no lines then). */
  backlogOver(now: number): boolean;
  /**
   * Publishes a shed request's `chat.rejected` after its answer went out, without holding the
   * answer: at most MAX_RECORDING at once; past that it is only counted (`unrecorded` in the
   * `shedding load` line logged each second while shedding), never queued in memory.
   */
  record(event: SluiceEvent<'chat.rejected'>, traceparent: string): void;
  stop(): void;
}

export interface GateDeps {
  config(): SluiceConfig;
  /** Reads the request path's backlog (overload-backlog.ts `readBacklog`); rejects when it cannot. */
  readBacklog(now: number, previous?: BacklogReading): Promise<BacklogReading>;
  publish(event: SluiceEvent<'chat.rejected'>, traceparent: string): Promise<unknown>;
  log: Logger;
  now(): number;
}

/** Shed requests' events being published at once; a few ms of the stream's acks at 10x load. */
export const MAX_RECORDING = 1024;
const FAILURE_LOG_EVERY_MS = 60_000;
const SUMMARY_EVERY_MS = 1000;

/** The gate, reading the backlog every BACKLOG_POLL_MS while `ingress.maxBacklog` is on. */
export function openOverloadGate(d: GateDeps): OverloadGate {
  let inFlight = 0;
  let backlog: BacklogReading | undefined;
  let reading = false;
  let recording = 0;
  let unrecorded = 0;
  const shed: Record<Bound, number> = { in_flight: 0, backlog: 0 };
  let failureLoggedAt = -Infinity;
  let summaryAt = d.now();

  const poll = () => {
    const now = d.now();
    // one line a second while shedding, not one per request: at ten times the load, logs are load too
    if ((shed.in_flight > 0 || shed.backlog > 0) && now - summaryAt >= SUMMARY_EVERY_MS) {
      d.log.warn({ shed: { ...shed }, unrecorded, inFlight, backlog: backlog?.pending }, 'shedding load');
      shed.in_flight = shed.backlog = unrecorded = 0;
      summaryAt = now;
    }
    if (reading || limitsOf(d.config().ingress).maxBacklog === 0) return;
    reading = true;
    d.readBacklog(now, backlog)
      .then((r) => (backlog = r))
      .catch((err: unknown) => {
        // an unknown backlog sheds nothing (the reading goes stale): the in-flight bound still holds
        if (now - failureLoggedAt < FAILURE_LOG_EVERY_MS) return;
        failureLoggedAt = now;
        d.log.warn({ err }, 'could not read the backlog; only the in-flight bound sheds until it is read again');
      })
      .finally(() => (reading = false));
  };
  const timer = setInterval(poll, BACKLOG_POLL_MS);
  timer.unref();
  poll();

  return {
    enter(now) {
      const admission = decideAdmission(inFlight, backlog, limitsOf(d.config().ingress), now);
      if (!admission.admit) {
        shed[admission.bound]++;
        return { kind: 'shed', bound: admission.bound, message: admission.message, retryAfterMs: admission.retryAfterMs };
      }
      inFlight++;
      let released = false;
      return {
        kind: 'admitted',
        release: () => {
          if (released) return;
          released = true;
          inFlight--;
        },
      };
    },
    inFlight: () => inFlight,
    // with nothing in flight only the backlog can refuse (maxInFlight is at least 1)
    backlogOver: (now) => !decideAdmission(0, backlog, limitsOf(d.config().ingress), now).admit,
    record(event, traceparent) {
      if (recording >= MAX_RECORDING) {
        unrecorded++;
        return;
      }
      recording++;
      d.publish(event, traceparent)
        .catch((err: unknown) => d.log.error({ err, requestId: event.requestId }, 'could not publish chat.rejected for a shed request'))
        .finally(() => recording--);
    },
    stop: () => clearInterval(timer),
  };
}
