import type { IncomingMessage } from 'node:http';
import { RequestRejected } from './rejection.js';
import { parseJsonBody } from './validate.js';

/**
 * How far past the limit a body is still read (and dropped) before its 413 goes out, so that a
 * client that writes its whole body before it reads (node's http.request, most non-JS clients)
 * is answered after its last byte, as it expects. A larger body is answered 413 at once; the
 * connection then closes with a linger (lingerOnClose in @sluice/contracts), which reads and
 * drops up to its own bound more, so the 413 still reaches a client that keeps sending unless
 * its body is past both bounds (then it may see a reset). The request timeout bounds the time.
 */
const DRAIN_PAST_LIMIT_BYTES = 16 * 1024 * 1024;

/**
 * Reads a JSON body, refusing it past `limit` bytes. Fastify's own `bodyLimit` is fixed when the
 * app is built; this reads `ingress.maxBodyBytes` per request, so a config change applies live.
 * A body over the limit is read to its end and dropped before the 413 goes out (see
 * DRAIN_PAST_LIMIT_BYTES); a declared Content-Length beyond what would be drained is refused
 * before reading.
 */
export function readJsonBody(payload: IncomingMessage, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = Number(payload.headers['content-length']);
    if (declared > limit + DRAIN_PAST_LIMIT_BYTES) {
      reject(tooLarge(limit));
      return;
    }
    const chunks: Buffer[] = [];
    let received = 0;
    const cleanup = () => {
      payload.removeListener('data', onData);
      payload.removeListener('end', onEnd);
      payload.removeListener('error', onError);
      payload.removeListener('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > limit + DRAIN_PAST_LIMIT_BYTES) {
        cleanup();
        reject(tooLarge(limit));
        return;
      }
      // over the limit: keep reading to the end, keep nothing
      if (received > limit) chunks.length = 0;
      else chunks.push(chunk);
    };
    const onError = (err: Error) => {
      cleanup();
      reject(unreadable(payload, err.message));
    };
    const onClose = () => {
      cleanup();
      reject(unreadable(payload, 'the connection closed'));
    };
    const onEnd = () => {
      cleanup();
      if (received > limit) {
        reject(tooLarge(limit));
        return;
      }
      try {
        resolve(parseJsonBody(Buffer.concat(chunks, received).toString('utf8')));
      } catch (e) {
        reject(e);
      }
    };
    payload.on('data', onData);
    payload.on('end', onEnd);
    payload.on('error', onError);
    payload.on('close', onClose);
  });
}

function tooLarge(limit: number): RequestRejected {
  return new RequestRejected('body_too_large', `The request body is larger than ${limit} bytes.`, 'body');
}

/** The body stopped coming: node's request timeout (the client was answered 408 on the socket) or the client left. */
function unreadable(payload: IncomingMessage, why: string): RequestRejected {
  const cause = (payload.socket as { errored?: { code?: string } | null } | null)?.errored;
  if (cause?.code === 'ERR_HTTP_REQUEST_TIMEOUT') return new RequestRejected('request_timeout', undefined, 'body');
  return new RequestRejected('invalid_request', `The request body could not be read: ${why}`, 'body');
}
