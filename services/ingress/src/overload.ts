import type { SluiceConfig } from '@sluice/contracts';

/** Which bound shed a request: this process's requests in flight, or the request path's backlog in the stream. */
export type Bound = 'in_flight' | 'backlog';

/** `ingress.maxInFlight` and `ingress.maxBacklog` (0: no backlog bound). */
export interface OverloadLimits {
  maxInFlight: number;
  maxBacklog: number;
}

/** The request path's backlog as read at one moment (overload-backlog.ts). */
export interface Backlog {
  /** Epoch ms of the reading. */
  at: number;
  /** Messages not yet delivered (`num_pending`) summed over the request path's durables. */
  pending: number;
  /** Requests the invoker's lanes took per second since the reading before; undefined on the first. */
  drainPerSecond?: number;
}

export type Admission = { admit: true } | { admit: false; bound: Bound; message: string; retryAfterMs: number };

const DEFAULT_MAX_IN_FLIGHT = 2048;
const DEFAULT_MAX_BACKLOG = 20_000;
/** How often the backlog is read: a few consumer-info requests a reading, never one per request. */
export const BACKLOG_POLL_MS = 250;
/** A reading older than this is not judged (the read failed or stalls): an unknown backlog sheds nothing. */
export const BACKLOG_STALE_MS = 4 * BACKLOG_POLL_MS;
/** Requests in flight are answered within a second or two of each other: one of them ending frees a place. */
const IN_FLIGHT_RETRY_AFTER_MS = 1000;
/** Retry-After of the backlog bound when its drain rate is unknown or zero, and its ceiling. */
const BACKLOG_RETRY_AFTER_MS = { min: 1000, unknown: 5000, max: 60_000 } as const;

/** The bounds in force, from the live config. */
export function limitsOf(ingress: SluiceConfig['ingress']): OverloadLimits {
  return { maxInFlight: ingress.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT, maxBacklog: ingress.maxBacklog ?? DEFAULT_MAX_BACKLOG };
}

/**
 * Whether one more request may come in: pure. Refused when `inFlight` (this process's requests
 * not yet answered, the new one not counted) has reached `maxInFlight`, or when a fresh backlog
 * reading (under BACKLOG_STALE_MS old) is over `maxBacklog`. Retry-After: a second for the
 * in-flight bound; for the backlog, the time the invoker takes to work off the excess at the rate it
 * took requests over the last reading (1 s to 60 s; 5 s when that rate is unknown).
 *
 * @example
 * decideAdmission(2048, undefined, { maxInFlight: 2048, maxBacklog: 20000 }, now)
 * // → { admit: false, bound: 'in_flight', retryAfterMs: 1000, message: 'Sluice is answering 2048 requests...' }
 */
export function decideAdmission(inFlight: number, backlog: Backlog | undefined, limits: OverloadLimits, now: number): Admission {
  if (inFlight >= limits.maxInFlight) {
    return {
      admit: false,
      bound: 'in_flight',
      message: `The gateway is answering ${limits.maxInFlight} requests at once on this instance, its bound; retry after the given time.`,
      retryAfterMs: IN_FLIGHT_RETRY_AFTER_MS,
    };
  }
  if (limits.maxBacklog > 0 && backlog && now - backlog.at < BACKLOG_STALE_MS && backlog.pending > limits.maxBacklog) {
    return {
      admit: false,
      bound: 'backlog',
      message: `${backlog.pending} requests are waiting in the gateway's queues, over its bound of ${limits.maxBacklog}; retry after the given time.`,
      retryAfterMs: backlogRetryAfterMs(backlog.pending - limits.maxBacklog, backlog.drainPerSecond),
    };
  }
  return { admit: true };
}

function backlogRetryAfterMs(excess: number, drainPerSecond: number | undefined): number {
  if (!drainPerSecond || drainPerSecond <= 0) return BACKLOG_RETRY_AFTER_MS.unknown;
  const ms = Math.ceil((excess / drainPerSecond) * 1000);
  return Math.min(BACKLOG_RETRY_AFTER_MS.max, Math.max(BACKLOG_RETRY_AFTER_MS.min, ms));
}
