import { SluiceError, type ErrorCode } from '@sluice/contracts';

/**
 * Ingress refused the request: the client gets `code` with its catalogue status, and a
 * `chat.rejected` event records it. `param` names the offending field, as OpenAI does.
 */
export class RequestRejected extends SluiceError {
  constructor(
    code: ErrorCode,
    message?: string,
    readonly param?: string,
    /** What was known of the request when it was refused, for the event. */
    readonly known: { model?: string; user?: string } = {},
  ) {
    super(code, message);
  }
}

/** Shorthand for an invalid_request naming the field. */
export function invalid(param: string, message: string): RequestRejected {
  return new RequestRejected('invalid_request', message, param);
}
