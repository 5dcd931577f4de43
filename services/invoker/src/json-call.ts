import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { APIConnectionError, APIError, APIUserAbortError } from 'openai';
import { transportFor, webHeaders, type Agents } from './http-fetch.js';
import type { HeaderReader } from './retry.js';

/** One whole (not streamed) answer: the status, the parsed JSON body (text when it is not JSON), the headers. */
interface JsonAnswer {
  status: number;
  data: unknown;
  headers: HeaderReader;
}

interface JsonCall {
  /** The deployment's base URL as the SDK takes it (`.../v1`, Azure's `.../openai`); `path` is appended as the SDK appends it. */
  baseURL: string;
  path: string;
  /** Query parameters (Azure's `api-version`). */
  query?: Record<string, string>;
  apiKey: string;
  /** How the key is sent: `Authorization: Bearer` (OpenAI and compatibles), or Azure's `api-key` header. */
  auth?: 'bearer' | 'api-key';
  body: unknown;
  /** Extra request headers (Idempotency-Key). */
  headers?: Record<string, string>;
  /** Aborts the call: it then rejects with the SDK's APIUserAbortError. */
  signal: AbortSignal;
}

/** POSTs a JSON body and reads a JSON answer; rejects as the openai SDK would (see `createJsonPost`). */
export type JsonPost = (call: JsonCall) => Promise<JsonAnswer>;

/**
 * A non-streamed OpenAI call over node:http, without the SDK's request pipeline: the SDK builds
 * its options, headers and log details, an AbortController, a web `Response` over the socket and
 * its body reader for every call: measured alone against the simulator, 0.55-1.08 ms of CPU per
 * call through the SDK over http-fetch.ts, 0.25-0.33 ms this way. This sends
 * what the SDK sends an OpenAI-compatible upstream (`Authorization: Bearer`, JSON body, the path
 * under the base URL; for Azure the `api-key` header and `?api-version=`, the path under the
 * deployment as upstream.ts `azureTarget` builds it) and fails the way the SDK fails, so
 * `classifyError` reads both alike:
 * - a status of 400 or more: the SDK's error for it (`APIError.generate`: RateLimitError,
 *   InternalServerError, ...), with the upstream's `error` object and headers;
 * - no connection, or a reset before the answer's headers: APIConnectionError with the cause;
 * - the connection lost in the middle of the body: an Error `terminated` with the socket's error
 *   as cause (what undici throws there);
 * - `signal` aborted: APIUserAbortError;
 * - a 2xx whose JSON does not parse: the SyntaxError.
 * Streamed calls stay on the SDK (its SSE reader).
 */
export function createJsonPost(agents: Agents): JsonPost {
  const urls = new Map<string, URL>();
  const urlOf = (baseURL: string, path: string, query: Record<string, string> | undefined): URL => {
    const search = query ? `?${new URLSearchParams(query).toString()}` : '';
    const key = `${baseURL}\n${path}\n${search}`;
    let url = urls.get(key);
    if (!url) {
      url = new URL(baseURL + (baseURL.endsWith('/') && path.startsWith('/') ? path.slice(1) : path) + search);
      if (urls.size > 1000) urls.clear();
      urls.set(key, url);
    }
    return url;
  };
  return (call) =>
    new Promise<JsonAnswer>((resolve, reject) => {
      if (call.signal.aborted) return reject(new APIUserAbortError());
      const url = urlOf(call.baseURL, call.path, call.query);
      const transport = transportFor(agents, url);
      if (!transport) return reject(new APIConnectionError({ message: `unsupported protocol ${url.protocol}` }));
      const payload = JSON.stringify(call.body);
      const headers = {
        'content-type': 'application/json',
        accept: 'application/json',
        ...(call.auth === 'api-key' ? { 'api-key': call.apiKey } : { authorization: `Bearer ${call.apiKey}` }),
        'content-length': String(Buffer.byteLength(payload)),
        ...call.headers,
      };
      let settled = false;
      const settle = (f: () => void) => {
        if (settled) return;
        settled = true;
        call.signal.removeEventListener('abort', onAbort);
        f();
      };
      const req = transport.send(url, { method: 'POST', headers, agent: transport.agent }, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => settle(() => answer(res, Buffer.concat(chunks).toString('utf8'), resolve, reject)));
        const lost = (e?: Error) => settle(() => reject(new Error('terminated', { cause: e ?? Object.assign(new Error('aborted'), { code: 'ECONNRESET' }) })));
        res.on('error', lost);
        res.on('close', () => {
          if (!res.complete) lost();
        });
      });
      const onAbort = () => {
        req.destroy();
        settle(() => reject(new APIUserAbortError()));
      };
      call.signal.addEventListener('abort', onAbort, { once: true });
      req.on('error', (e) => settle(() => reject(new APIConnectionError({ cause: e }))));
      req.end(payload);
    });
}

function answer(res: IncomingMessage, text: string, resolve: (a: JsonAnswer) => void, reject: (e: unknown) => void): void {
  const status = res.statusCode ?? 0;
  if (status >= 400) {
    const json = parseOrUndefined(text);
    // as the SDK: the upstream's JSON error, or its text as the message
    reject(APIError.generate(status, json as object | undefined, json === undefined ? text : undefined, webHeaders(res.headers)));
    return;
  }
  const type = res.headers['content-type']?.split(';')[0]?.trim() ?? '';
  const isJson = type.includes('application/json') || type.endsWith('+json');
  let data: unknown = text;
  if (isJson && text !== '') {
    try {
      data = JSON.parse(text);
    } catch (e) {
      reject(e);
      return;
    }
  }
  resolve({ status, data, headers: readerOf(res.headers) });
}

function parseOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function readerOf(headers: IncomingHttpHeaders): HeaderReader {
  return {
    get: (name) => {
      const v = headers[name.toLowerCase()];
      return Array.isArray(v) ? v.join(', ') : v;
    },
  };
}
