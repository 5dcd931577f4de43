import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * The service logger: JSON lines on stdout, `service` on every line, level from `LOG_LEVEL`.
 * Trace ids are stamped by `withTrace` where a request's context is known.
 */
export function createLogger(service: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: service, level, base: { service }, timestamp: pino.stdTimeFunctions.isoTime });
}

/** A child logger carrying the W3C trace id and span id from a traceparent header, if any. */
export function withTrace(log: Logger, traceparent: string | undefined, extra: Record<string, unknown> = {}): Logger {
  const parts = traceparent?.split('-');
  if (!parts || parts.length < 4) return Object.keys(extra).length ? log.child(extra) : log;
  return log.child({ trace_id: parts[1], span_id: parts[2], ...extra });
}
