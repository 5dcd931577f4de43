import type { ChatErrorReply } from '@sluice/contracts';

/**
 * A request Sluice did not answer with a result: `code` and `status` come from the error
 * catalogue (`rate_limit_exceeded`/429, `service_busy`/503, `invalid_request`/400, ...). Retry after
 * `retryAfterMs` when it is set.
 */
export class SluiceRequestError extends Error {
  override readonly name: string = 'SluiceRequestError';
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

/**
 * The request is not answered yet: the gateway holds it for later (`held`: degrade level 4,
 * maintenance) or it was sent async and is still queued (`queued`). Its answer will be on
 * `resultSubject` (`sluice.results.<requestId>`), kept for a day by default;
 * `SluiceClient.result(requestId, { waitMs })` reads or waits for it. Status 202 (what HTTP clients get).
 */
export class SluiceHeldError extends SluiceRequestError {
  override readonly name: string = 'SluiceHeldError';
  constructor(
    override readonly requestId: string,
    readonly resultSubject: string,
    readonly state: 'held' | 'queued' = 'held',
  ) {
    super(
      state === 'held' ? 'request_held' : 'request_queued',
      state === 'held'
        ? 'The gateway is in maintenance: the request is held and will be answered when it recovers.'
        : 'The request is queued and not answered yet.',
      202,
      undefined,
      requestId,
    );
  }
}
