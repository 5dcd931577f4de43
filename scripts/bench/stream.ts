import { Agent, request } from 'node:http';
import type { Call } from './load.js';

const agent = new Agent({ keepAlive: true, maxSockets: 1024 });

/** Closes the streamed calls' kept-alive sockets, so the process can exit. */
export const closeStreamConnections = () => agent.destroy();

/** A streamed call and the time to its first chunk, per answered request, in ms (unsorted, in the order they answered). */
export interface StreamCall {
  call: Call;
  firstChunkMs: number[];
}

/**
 * POSTs `body(i)` (a `stream: true` chat request) and reads the SSE answer to its end. The time to
 * first chunk runs from sending the request to the first bytes of the response body (an SSE
 * `data:` line: headers alone do not count), which is what a chat UI waits for before it shows a
 * token. A request answered other than 200, or whose stream does not end with `data: [DONE]`,
 * failed.
 */
export function streamCall(url: URL, body: (i: number) => string, headers: Record<string, string>): StreamCall {
  const firstChunkMs: number[] = [];
  const call: Call = (i) =>
    new Promise((resolve, reject) => {
      const payload = body(i);
      const t0 = performance.now();
      let first: number | undefined;
      let tail = '';
      const req = request(
        url,
        { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers } },
        (res) => {
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            first ??= performance.now() - t0;
            tail = (tail + chunk).slice(-64);
          });
          res.on('end', () => {
            const ok = res.statusCode === 200 && first !== undefined && tail.includes('[DONE]');
            if (ok) firstChunkMs.push(first!);
            resolve(ok ? 'ok' : 'failed');
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  return { call, firstChunkMs };
}
