import type { ChatErrorReply } from '@sluice/contracts';

/**
 * A request Sluice did not answer with a result: `code` and `status` come from the error
 * catalogue (`rate_limit_exceeded`/429, `service_busy`/503, `invalid_request`/400, ...). Retry after
 * `retryAfterMs` when it is set.
 */
export class SluiceRequestError extends Error {
  override readonly name = 'SluiceRequestError';
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    readonly retryAfterMs?: number,
    readonly requestId?: string,
    /** The field or header at fault, when Sluice (or the upstream) named one: `messages`, `sluice-cache-ttl`... */
    readonly param?: string,
  ) {
    super(message);
  }

  static fromReply(reply: ChatErrorReply): SluiceRequestError {
    const { code, message, status, retryAfterMs, param } = reply.error;
    return new SluiceRequestError(code, message, status, retryAfterMs, reply.requestId, param ?? undefined);
  }
}
