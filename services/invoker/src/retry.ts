import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { isRetryableStatus, type UpstreamError } from '@sluice/contracts';
import { readLimits, type UpstreamLimits } from './observe-limits.js';

/** What went wrong with one upstream attempt, in the terms the attempt plan needs. */
export interface Failure {
  kind: 'status' | 'timeout' | 'connection' | 'protocol';
  /** HTTP status when the upstream answered with one. */
  status?: number;
  /** The upstream's message, with anything that looks like a key masked. */
  message: string;
  /** Worth trying again on the same deployment. */
  retryable: boolean;
  /** What the upstream asked us to wait (Retry-After / retry-after-ms), in ms. */
  retryAfterMs?: number;
  /** Part of the answer already went to the client, so no retry or fallback can hide this failure. */
  partial?: boolean;
  /** The upstream's x-ratelimit-remaining-* headroom, when it said. */
  remaining?: Remaining;
  /** All six x-ratelimit-* headers, read (observe-limits.ts). */
  limits?: UpstreamLimits;
  /** The upstream's own error (status, OpenAI type, code, param, message), for a status it answered with. */
  upstream?: UpstreamError;
}

/** x-ratelimit-remaining-requests / -tokens as the upstream sent them. */
export interface Remaining {
  requests?: string;
  tokens?: string;
}

/** Reads the upstream's rate-limit headroom; undefined when it sent none. */
export function remainingOf(headers: HeaderReader | undefined): Remaining | undefined {
  const requests = headers?.get('x-ratelimit-remaining-requests') ?? undefined;
  const tokens = headers?.get('x-ratelimit-remaining-tokens') ?? undefined;
  if (requests === undefined && tokens === undefined) return undefined;
  return { ...(requests !== undefined ? { requests } : {}), ...(tokens !== undefined ? { tokens } : {}) };
}

/** Anything with `get(name)`: fetch Headers, NATS headers, a Map in tests. */
export interface HeaderReader {
  get(name: string): string | null | undefined;
}

/**
 * How long the upstream asked us to wait, in ms: `retry-after-ms` (OpenAI's, more precise)
 * wins over `retry-after`, which is either delta-seconds or an HTTP date. Undefined when
 * neither is present or parseable.
 */
export function parseRetryAfter(headers: HeaderReader | undefined, now: number): number | undefined {
  if (!headers) return undefined;
  const ms = headers.get('retry-after-ms')?.trim();
  if (ms && /^\d+(\.\d+)?$/.test(ms)) return Math.ceil(Number(ms));
  const value = headers.get('retry-after')?.trim();
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.ceil(Number(value) * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/**
 * Exponential backoff with full jitter: uniform in [0, min(max, base * 2^(n-1))] for the n-th
 * retry (n >= 1). Full jitter spreads replicas that failed together instead of having them
 * retry in lockstep.
 */
export function backoffMs(n: number, settings: { baseBackoffMs: number; maxBackoffMs: number }, random: () => number): number {
  const ceiling = Math.min(settings.maxBackoffMs, settings.baseBackoffMs * 2 ** Math.max(0, n - 1));
  return Math.round(random() * ceiling);
}

/** Masks API keys an upstream may echo back (OpenAI quotes part of a wrong key in its 401). */
export function redact(text: string): string {
  return text.replace(/\b(sk|rk|pk)-[A-Za-z0-9_\-*.]{4,}/g, '$1-***').replace(/(Bearer\s+)\S+/gi, '$1***');
}

/**
 * A response body that broke off: node:http's `Error: aborted` (code ECONNRESET) from our own
 * fetch, or undici's `TypeError: terminated` (code on its cause); the SDK passes either through
 * untouched while a stream is being read.
 */
function isSocketError(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const code = (e as { code?: unknown }).code ?? (e.cause as { code?: unknown } | undefined)?.code;
  return e.message === 'terminated' || (typeof code === 'string' && /^(UND_ERR_|ECONN|EPIPE|ETIMEDOUT)/.test(code));
}

/** `instanceof APIError` alone narrows to `APIError<any, any, any>`; this keeps the declared status and headers types. */
function isApiError(e: unknown): e is APIError {
  return e instanceof APIError;
}

/** Our own timer cut a call short (idle timeout or the request's deadline); the message says which. */
export class CallAborted extends Error {}

/** The client cancelled the request: the call was stopped, and nothing retries it. */
export class CallCancelled extends Error {}

/**
 * The upstream's error as OpenAI's SDKs read it (`error.type`, `.code`, `.param`), with the
 * (masked) message: what a client is told when the upstream refused its request.
 */
function upstreamErrorOf(e: APIError, status: number, message: string): UpstreamError {
  const text = (v: unknown): string | null => (typeof v === 'string' ? v : null);
  const type = text(e.type) ?? (status === 429 ? 'rate_limit_error' : status >= 500 ? 'server_error' : 'invalid_request_error');
  return { status, type, code: text(e.code), param: text(e.param), message };
}

/** Turns whatever an attempt threw into a Failure. */
export function classifyError(e: unknown, now: number): Failure {
  if (e instanceof CallAborted) return { kind: 'timeout', message: e.message, retryable: true };
  if (e instanceof APIConnectionTimeoutError) return { kind: 'timeout', message: 'upstream timed out', retryable: true };
  if (e instanceof APIUserAbortError) return { kind: 'timeout', message: 'call aborted', retryable: true };
  if (e instanceof APIConnectionError) {
    const cause = e.cause instanceof Error ? `: ${e.cause.message}` : '';
    return { kind: 'connection', message: redact(`${e.message}${cause}`), retryable: true };
  }
  if (isApiError(e)) {
    const reported = e.error && 'message' in e.error ? e.error.message : undefined;
    const message = redact(typeof reported === 'string' ? reported : e.message);
    if (e.status === undefined) {
      // an error event inside an SSE stream: the upstream broke mid-answer
      return { kind: 'protocol', message, retryable: true };
    }
    const retryAfterMs = parseRetryAfter(e.headers, now);
    const remaining = remainingOf(e.headers);
    const limits = readLimits(e.headers);
    return {
      kind: 'status',
      status: e.status,
      message,
      retryable: isRetryableStatus(e.status),
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      ...(remaining !== undefined ? { remaining } : {}),
      ...(limits !== undefined ? { limits } : {}),
      upstream: upstreamErrorOf(e, e.status, message),
    };
  }
  if (isSocketError(e)) {
    const cause = (e as Error).cause instanceof Error ? `: ${((e as Error).cause as Error).message}` : '';
    return { kind: 'connection', message: redact(`connection lost mid-answer (${(e as Error).message}${cause})`), retryable: true };
  }
  const message = e instanceof Error ? e.message : String(e);
  return { kind: 'protocol', message: redact(message), retryable: false };
}
