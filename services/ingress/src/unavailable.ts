import { SluiceError } from '@sluice/contracts';

/** The Retry-After of a request refused because NATS did not answer: a stream elects a leader in a few seconds. */
const UNAVAILABLE_RETRY_AFTER_MS = 1000;

/**
 * A request refused because NATS did not answer for sure (a node of the cluster down, a stream or
 * bucket electing its leader): 503 `service_busy` with Retry-After, which clients and the SDKs
 * retry. Never a 500: nothing is wrong with the request, and a retry succeeds once the cluster has
 * a leader again. `what` says what could not be done, for the person reading the error.
 */
export function busUnavailable(what: string): SluiceError {
  return new SluiceError('service_busy', `${what}: a NATS node is down or electing a leader; retry shortly.`, UNAVAILABLE_RETRY_AFTER_MS);
}
