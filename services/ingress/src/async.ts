import { Subjects, type ChatAccepted } from '@sluice/contracts';
import { RequestRejected } from './rejection.js';

/**
 * Whether a request asked to be answered later (`x-sluice-async` over HTTP, `sluice-async` over
 * NATS): `true` or `false`, any case; absent is false. An async request is answered whole, so it
 * may not stream.
 *
 * @throws RequestRejected invalid_request naming the header for any other value, or `stream`
 * when it also asks to stream.
 * @example
 * asyncAsked(header(headers, 'x-sluice-async'), 'x-sluice-async', request.stream) // true for "TRUE"
 */
export function asyncAsked(value: string | undefined, param: string, stream: boolean): boolean {
  if (value === undefined) return false;
  const v = value.trim().toLowerCase();
  if (v !== 'true' && v !== 'false')
    throw new RequestRejected('invalid_request', `${param} must be "true" or "false", not ${JSON.stringify(value.slice(0, 40))}.`, param);
  if (v === 'true' && stream)
    throw new RequestRejected('invalid_request', 'An async request is answered whole: leave out `stream` or set it to false.', 'stream');
  return v === 'true';
}

/** The `queued` notice of an async request: stored on its result subject before it is published, and the client's answer now. */
export function queuedNotice(requestId: string, at: number): ChatAccepted {
  return { requestId, status: 'queued', resultSubject: Subjects.result(requestId), at };
}
