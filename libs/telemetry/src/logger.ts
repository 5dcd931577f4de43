import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { activeTraceIds } from './spans.js';
import { tracingOn } from './state.js';

export type { Logger };

/**
 * The service logger: JSON lines on stdout, `service` on every line, level from `LOG_LEVEL`.
 * With tracing on, every line written while a span is active carries that span's `trace_id` and
 * `span_id` (a pino mixin: one context lookup per line); with it off there is no mixin at all.
 * `destination` defaults to stdout.
 */
export function createLogger(service: string, level = process.env.LOG_LEVEL ?? 'info', destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    name: service,
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    // pino merges the line's fields into what the mixin returns: always a fresh object
    ...(tracingOn() ? { mixin: () => activeTraceIds() ?? {} } : {}),
  };
  return destination ? pino(options, destination) : pino(options);
}

/**
 * A child logger carrying the W3C trace id and span id from a traceparent header, if any. With
 * tracing on the mixin stamps the ids of the live span instead (a line must not carry two
 * `trace_id`s), so only `extra` is bound.
 */
export function withTrace(log: Logger, traceparent: string | undefined, extra: Record<string, unknown> = {}): Logger {
  const parts = tracingOn() ? undefined : traceparent?.split('-');
  if (!parts || parts.length < 4) return Object.keys(extra).length ? log.child(extra) : log;
  return log.child({ trace_id: parts[1], span_id: parts[2], ...extra });
}
