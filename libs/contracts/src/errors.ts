/**
 * The one catalogue of errors that reach a user. `type` is the OpenAI error type, so SDKs
 * that branch on it behave as they would against OpenAI.
 */
export const Errors = {
  invalid_json: { status: 400, type: 'invalid_request_error', message: 'The request body is not valid JSON.' },
  invalid_request: { status: 400, type: 'invalid_request_error', message: 'The request is not valid.' },
  body_too_large: { status: 413, type: 'invalid_request_error', message: 'The request body is too large.' },
  missing_api_key: {
    status: 401,
    type: 'invalid_request_error',
    message: 'No API key provided. Send it as "Authorization: Bearer <key>" (HTTP) or the sluice-key header (NATS).',
  },
  /**
   * NATS door: the request's reply subject is not one the asking tenant may be answered on (its
   * own `sluice.inbox.<tenant>.` prefix; `_INBOX.` too when NATS runs without Sluice's users).
   */
  invalid_reply_subject: {
    status: 400,
    type: 'invalid_request_error',
    message: 'The reply subject is not an inbox of this tenant: connect with inboxPrefix "sluice.inbox.<tenant>".',
  },
  invalid_api_key: { status: 401, type: 'invalid_request_error', message: 'The API key is not valid for this tenant.' },
  /** The key is valid but may not do this (a tenant's read key asking for another tenant, a non-admin key on the admin API). */
  permission_denied: { status: 403, type: 'invalid_request_error', message: 'This key may not do that.' },
  /** The key was revoked or has expired. */
  key_expired: { status: 401, type: 'invalid_request_error', message: 'The API key has expired or was revoked.' },
  /** A token budget rule refuses inputs over its size (instead of trimming them). */
  token_budget_exceeded: { status: 400, type: 'invalid_request_error', message: 'The input is larger than this key or feature allows.' },
  model_not_found: { status: 404, type: 'invalid_request_error', message: 'The model does not exist.' },
  model_not_allowed: { status: 403, type: 'invalid_request_error', message: 'This tenant may not use the model.' },
  rate_limit_exceeded: { status: 429, type: 'rate_limit_error', message: 'Rate limit reached; retry after the given time.' },
  insufficient_quota: { status: 429, type: 'insufficient_quota', message: 'The budget for this period is used up.' },
  service_busy: { status: 503, type: 'server_error', message: 'The gateway is shedding load; retry after the given time.' },
  maintenance: { status: 503, type: 'server_error', message: 'The gateway is in maintenance; retry later.' },
  /** The upstream refused the request (a 4xx other than 429); the client gets the upstream's own status and error. */
  upstream_rejected: { status: 400, type: 'invalid_request_error', message: 'The upstream refused the request.' },
  /**
   * The client stopped the request (closed its connection, or published a cancel): nginx's 499
   * "client closed request". Seen on the ledger and by a NATS client still listening.
   */
  request_cancelled: { status: 499, type: 'invalid_request_error', message: 'The client cancelled the request.' },
  upstream_failed: { status: 502, type: 'server_error', message: 'Every upstream deployment failed.' },
  deadline_exceeded: { status: 504, type: 'timeout_error', message: 'The request was not answered before its deadline.' },
  /** `GET /v1/sluice/requests/{id}/result`: no stored result for this tenant (unknown id, answered synchronously, or past its keep time). */
  result_not_found: {
    status: 404,
    type: 'invalid_request_error',
    message: 'No stored result for this request: it was answered directly, is unknown, or has expired.',
  },
  /**
   * `Idempotency-Key` sent again with another request (another body, endpoint or door) than the
   * first: 422 as the IETF draft `draft-ietf-httpapi-idempotency-key-header` asks.
   */
  idempotency_key_reused: {
    status: 422,
    type: 'invalid_request_error',
    message: 'This Idempotency-Key was used with a different request; use a new key for a new request.',
  },
  /** `Idempotency-Key`: another try with the same key took the request over while this one waited; retry shortly. */
  idempotency_key_in_use: { status: 409, type: 'invalid_request_error', message: 'A request with this Idempotency-Key is still being processed.' },
  /** `/v1/batches/{id}`: no batch with this id for this tenant. */
  batch_not_found: { status: 404, type: 'invalid_request_error', message: 'No batch with this id.' },
  /** `POST /v1/batches/{id}/cancel` on a batch that has already ended (or is finalizing). */
  batch_not_cancellable: { status: 409, type: 'invalid_request_error', message: 'The batch can no longer be cancelled.' },
  /** `POST /v1/files`: the upload is larger than `ingress.maxFileBytes`. */
  file_too_large: { status: 413, type: 'invalid_request_error', message: 'The file is larger than this gateway accepts.' },
  /** `POST /v1/files`: a `batch` file that is not JSONL (a `.jsonl` name, UTF-8 text) or has more than 50,000 lines. */
  invalid_file: { status: 400, type: 'invalid_request_error', message: 'The file is not valid for its purpose.' },
  /** The Files API: no file with this id for this tenant (unknown, deleted, or another tenant's). */
  file_not_found: { status: 404, type: 'invalid_request_error', message: 'No such file.' },
  not_found: { status: 404, type: 'invalid_request_error', message: 'Not found.' },
  internal_error: { status: 500, type: 'server_error', message: 'Internal error.' },
  request_timeout: { status: 408, type: 'invalid_request_error', message: 'The request was not received in time; send it again, faster.' },
  headers_too_large: { status: 431, type: 'invalid_request_error', message: 'The request line and headers are too large.' },
} as const;
export type ErrorCode = keyof typeof Errors;

/** An error with a stable code; throw it anywhere and the front door answers with its status. */
export class SluiceError extends Error {
  readonly status: number;
  readonly type: string;
  constructor(
    readonly code: ErrorCode,
    message?: string,
    readonly retryAfterMs?: number,
  ) {
    super(message ?? Errors[code].message);
    this.status = Errors[code].status;
    this.type = Errors[code].type;
  }
}

/** The OpenAI-shaped error body. */
export function openAiErrorBody(code: string | null, message: string, type?: string, param?: string | null) {
  const known = code === null ? undefined : (Errors as Record<string, { type: string }>)[code];
  return { error: { message, type: type ?? known?.type ?? 'server_error', param: param ?? null, code } };
}

// What an HTTP server says when the request never reached a route (malformed HTTP, a timeout,
// fastify's router), shared by both HTTP ports. It uses this file's catalogue.
export { answerClientError, applyHttpLimits, frameworkRefusal, HTTP_SERVER_OPTIONS, type HttpLimits, type Refusal } from './http-edge.js';
