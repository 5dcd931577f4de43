import type { IncomingMessage } from 'node:http';
import { RequestRejected } from './rejection.js';
import { parseJsonBody } from './validate.js';

/**
 * Reads a JSON body, refusing it past `limit` bytes. Fastify's own `bodyLimit` is fixed when the
 * app is built; this reads `ingress.maxBodyBytes` per request, so a config change applies live.
 * A declared Content-Length over the limit is refused before reading.
 */
export function readJsonBody(payload: IncomingMessage, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = Number(payload.headers['content-length']);
    if (declared > limit) {
      reject(tooLarge(limit));
      return;
    }
    const chunks: Buffer[] = [];
    let received = 0;
    const cleanup = () => {
      payload.removeListener('data', onData);
      payload.removeListener('end', onEnd);
      payload.removeListener('error', onError);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > limit) {
        cleanup();
        // keep draining so the socket can carry the 413 back
        payload.resume();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onError = (err: Error) => {
      cleanup();
      reject(new RequestRejected('invalid_request', `The request body could not be read: ${err.message}`, 'body'));
    };
    const onEnd = () => {
      cleanup();
      try {
        resolve(parseJsonBody(Buffer.concat(chunks, received).toString('utf8')));
      } catch (e) {
        reject(e as Error);
      }
    };
    payload.on('data', onData);
    payload.on('end', onEnd);
    payload.on('error', onError);
  });
}

function tooLarge(limit: number): RequestRejected {
  return new RequestRejected('body_too_large', `The request body is larger than ${limit} bytes.`, 'body');
}
