import { createRequire } from 'node:module';
import type { Agent, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';

// Loaded with require on purpose: OpenTelemetry's http instrumentation patches node:http when
// it is required (require-in-the-middle); an ESM import would bypass the hook and the upstream
// call would have no client span.
const require = createRequire(import.meta.url);
const http = require('node:http') as typeof import('node:http');
const https = require('node:https') as typeof import('node:https');

/** Keep-alive agents by URL protocol, shared by the SDK's fetch and the direct JSON calls (json-call.ts). */
export type Agents = Readonly<Record<'http:' | 'https:', Agent>>;

export function createAgents(opts: { maxSockets?: number } = {}): Agents {
  return {
    'http:': new http.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 1024 }),
    'https:': new https.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 1024 }),
  };
}

/** node:http's or node:https's `request` for a URL's protocol, and its agent; undefined for other protocols. */
export function transportFor(agents: Agents, url: URL): { send: typeof http.request; agent: Agent } | undefined {
  if (url.protocol === 'http:') return { send: http.request, agent: agents['http:'] };
  if (url.protocol === 'https:') return { send: https.request, agent: agents['https:'] };
  return undefined;
}

/**
 * A `fetch` for the openai SDK over node:http keep-alive agents. Measured against the simulator
 * on this machine it costs ~0.75 ms of CPU per call where the global (undici) fetch costs ~1.4 ms.
 * The invoker uses it for streamed calls (whole answers go through json-call.ts, cheaper still).
 * Bodies other than strings (file uploads) go to the global fetch.
 */
export function createHttpFetch(agents: Agents): typeof fetch {
  const httpFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const body = init?.body;
    if (input instanceof Request || (body !== undefined && body !== null && typeof body !== 'string')) return fetch(input, init);
    const url = input instanceof URL ? input : new URL(input);
    const transport = transportFor(agents, url);
    if (!transport) return fetch(input, init);
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((v, k) => (headers[k] = v));
    const signal = init?.signal ?? undefined;
    if (signal?.aborted) throw abortError(signal);
    return new Promise<Response>((resolve, reject) => {
      const req = transport.send(url, { method: init?.method ?? 'GET', headers, agent: transport.agent }, (res: IncomingMessage) => {
        const h = webHeaders(res.headers);
        const status = res.statusCode ?? 0;
        // a Response may not carry a body for these statuses
        const noBody = status === 204 || status === 205 || status === 304 || init?.method === 'HEAD';
        if (noBody) res.resume();
        resolve(new Response(noBody ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), { status, statusText: res.statusMessage ?? '', headers: h }));
      });
      const onAbort = () => {
        const err = abortError(signal!);
        req.destroy(err);
        reject(err);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('close', () => signal?.removeEventListener('abort', onAbort));
      req.on('error', reject);
      req.end(body ?? undefined);
    });
  };
  return httpFetch;
}

/** node's response headers as fetch Headers (repeated headers joined with ", "). */
export function webHeaders(headers: IncomingHttpHeaders): Headers {
  const h = new Headers();
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(', ') : v);
  return h;
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException('The operation was aborted.', 'AbortError');
}
