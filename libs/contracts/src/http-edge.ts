import { STATUS_CODES, type Server, type ServerOptions } from 'node:http';
import type { Socket } from 'node:net';
import { Errors, openAiErrorBody, type ErrorCode } from './errors.js';
import { isLingering, lingeringClose } from './http-linger.js';

// The edges of every Sluice HTTP server (ingress and ledger): the limits node enforces before a
// route runs, and the answers for what never became a request. No fastify import: both services
// hand these to fastify as options.

/** A refusal made before any route ran: a catalogue code and a message a person can act on. */
export interface Refusal {
  code: ErrorCode;
  message: string;
}

/**
 * Node server options that are fixed when the server is created (fastify's `http` option).
 * The check interval matters: node looks for requests past their header or request timeout only
 * this often, so a timeout of T cuts between T and T + 1 s (node's default, 30 s, would let a
 * 10 s header timeout run 40 s). Each check walks only the connections still receiving a request.
 */
export const HTTP_SERVER_OPTIONS = {
  connectionsCheckingInterval: 1000,
  /** Request line plus headers; node's default, written down. Over it: 431 `headers_too_large`. */
  maxHeaderSize: 16 * 1024,
} as const satisfies ServerOptions;

/** The limits node enforces on a server; node reads each of them live. */
export interface HttpLimits {
  /**
   * Receiving the whole request (line, headers, body), counted from its first byte. The answer
   * is not covered: a long SSE stream is not cut by it. Past it: 408 `request_timeout`, closed.
   */
  requestTimeoutMs: number;
  /** Receiving the request line and headers (on a new connection: from the connect). Capped by requestTimeoutMs. */
  headersTimeoutMs: number;
  /** An idle keep-alive connection is closed after this; responses say so in `Keep-Alive: timeout=`. */
  keepAliveTimeoutMs: number;
  /** A connection on which no byte moves either way for this long is destroyed without an answer. */
  idleTimeoutMs: number;
  /** Connections accepted past this many are closed at once, unanswered (the client sees a reset). */
  maxConnections: number;
}

/**
 * Sets the limits on a node HTTP server. Node reads them as it goes (timeouts at each check or
 * request, the connection limit at each accept), so calling this again applies a change live.
 *
 * @example
 * applyHttpLimits(app.server, { requestTimeoutMs: 30_000, headersTimeoutMs: 10_000, keepAliveTimeoutMs: 72_000, idleTimeoutMs: 120_000, maxConnections: 4096 });
 */
export function applyHttpLimits(server: Server, limits: HttpLimits): void {
  server.requestTimeout = limits.requestTimeoutMs;
  // node refuses headersTimeout > requestTimeout only at creation; keep it true after
  server.headersTimeout = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.timeout = limits.idleTimeoutMs;
  server.maxConnections = limits.maxConnections;
}

/** What node's HTTP parser refused, or a request it timed out, in the catalogue's terms. */
function clientRefusal(code: string | undefined): Refusal {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return { code: 'headers_too_large', message: `The request line and headers are larger than ${HTTP_SERVER_OPTIONS.maxHeaderSize} bytes.` };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { code: 'request_timeout', message: Errors.request_timeout.message };
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return { code: 'body_too_large', message: 'The chunk extensions of the request body are too large.' };
    default:
      return { code: 'invalid_request', message: 'The request is not valid HTTP.' };
  }
}

/**
 * fastify's `clientErrorHandler` (node's `clientError`) for every Sluice HTTP server: malformed
 * HTTP, headers over the limit, a request not received in time. There is no request object yet
 * (or not a whole one), so the answer is written on the socket in the catalogue's shape, and the
 * socket is closed with a linger (lingeringClose): the client may still be sending, and closing
 * at once would reset the connection before it reads the answer. Nothing is written once a
 * response has begun on the socket (that socket is destroyed: it cannot be answered), nor on a
 * socket already lingering (node's parser reports each chunk that comes after its error again).
 *
 * @example
 * Fastify({ clientErrorHandler: answerClientError });
 */
export function answerClientError(err: Error & { code?: string }, socket: Socket): void {
  if (isLingering(socket)) return;
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (err.code === 'ECONNRESET' || socket.destroyed) {
    socket.destroy();
    return;
  }
  if (inFlight?.headersSent) {
    socket.destroy(err);
    return;
  }
  const { code, message } = clientRefusal(err.code);
  if (socket.writable) {
    const status = Errors[code].status;
    const body = JSON.stringify(openAiErrorBody(code, message));
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  // destroyed with `err` in the end: a handler still waiting for the body tells a timeout by it
  lingeringClose(socket, err);
}

/**
 * fastify's `frameworkErrors` (raised by its router before a route runs) in the catalogue's
 * terms: a URL that does not decode, a path parameter over `maxParamLength`.
 */
export function frameworkRefusal(error: { code?: string; message: string }): Refusal {
  switch (error.code) {
    case 'FST_ERR_BAD_URL':
      return { code: 'invalid_request', message: `The request URL could not be read: ${error.message}` };
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return { code: 'not_found', message: 'Nothing is found at a path with a segment that long.' };
    default:
      return { code: 'internal_error', message: Errors.internal_error.message };
  }
}
