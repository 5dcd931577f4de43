import { isTransient, readRequested, type Bus } from '@sluice/bus';
import type { RequestContext } from '@sluice/contracts';

/** The request's body cannot be read where `ctx.requestSeq` points: the request cannot be sent, now or on a retry. */
export class Unsendable extends Error {}

/** Reads a request's body (the client's JSON, as sent); throws Unsendable, or a transient NATS error to be retried. */
export type BodyReader = (ctx: RequestContext, requestId: string) => Promise<Record<string, unknown>>;

/**
 * The body from the request's `chat.requested` in SLUICE_EVENTS, by the sequence the limiter put
 * in `ctx.requestSeq`: one JetStream request per request, the price of carrying the conversation
 * in one event instead of five. A message that is gone, is not that request's chat.requested, or
 * has no object body is Unsendable (the request fails with internal_error instead of hanging);
 * a fault of the connection or the server is thrown as it is, so the input is redelivered.
 */
export function streamBodies(bus: Pick<Bus, 'jsm'>): BodyReader {
  return async (ctx, requestId) => {
    if (ctx.requestSeq === undefined) throw new Unsendable('the request carries no requestSeq (was it admitted by the limiter?)');
    let body: unknown;
    try {
      ({ body } = (await readRequested(bus, ctx.requestSeq, requestId)).data);
    } catch (e) {
      if (isTransient(e)) throw e;
      throw new Unsendable(e instanceof Error ? e.message : String(e));
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Unsendable(`the body of ${requestId} is not a JSON object`);
    return body as Record<string, unknown>;
  };
}
