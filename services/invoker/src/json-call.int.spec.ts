import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgents } from './http-fetch.js';
import { createJsonPost } from './json-call.js';
import { classifyError } from './retry.js';

/** An upstream whose answer per path is written by hand, to reach what the simulator never does. */
const routes: Record<string, (res: ServerResponse, body: string, headers: Record<string, unknown>) => void> = {
  '/v1/ok': (res, body, headers) => {
    res.writeHead(200, { 'content-type': 'application/json', 'x-ratelimit-remaining-requests': '9' });
    res.end(JSON.stringify({ echo: JSON.parse(body), auth: headers.authorization, key: headers['idempotency-key'] }));
  },
  '/v1/limited': (res) => {
    res.writeHead(429, { 'content-type': 'application/json', 'retry-after-ms': '1500' });
    res.end(JSON.stringify({ error: { message: 'slow down', type: 'requests', code: 'rate_limit_exceeded', param: null } }));
  },
  '/v1/text-error': (res) => {
    res.writeHead(502, { 'content-type': 'text/plain' });
    res.end('bad gateway');
  },
  '/v1/garbage': (res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"half":');
  },
  '/v1/cut': (res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
    res.write('{"id":"x",');
    setTimeout(() => res.socket?.destroy(), 20);
  },
  '/v1/hang': () => undefined,
  '/openai/deployments/d1/chat/completions?api-version=2024-10-21': (res, _body, headers) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ apiKey: headers['api-key'], auth: headers.authorization ?? null }));
  },
};

describe('the direct JSON call against a real HTTP server', () => {
  let server: Server;
  let baseURL: string;
  const post = createJsonPost(createAgents());
  const call = (path: string, signal = new AbortController().signal) =>
    post({ baseURL, path, apiKey: 'sk-test', body: { model: 'm', n: 1 }, headers: { 'Idempotency-Key': 'k1' }, signal });

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => routes[req.url ?? '']?.(res, body, req.headers));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it("sends Azure's shape: the query, and the key in an api-key header instead of a bearer", async () => {
    const root = baseURL.replace(/\/v1$/, '/openai');
    const signal = new AbortController().signal;
    const got = await post({
      baseURL: root,
      path: '/deployments/d1/chat/completions',
      query: { 'api-version': '2024-10-21' },
      auth: 'api-key',
      apiKey: 'az',
      body: {},
      signal,
    });
    expect(got.data).toEqual({ apiKey: 'az', auth: null });
  });

  it('sends the body, the bearer key and extra headers under the base URL, and returns the parsed answer with its headers', async () => {
    const got = await call('/ok');
    expect(got.status).toBe(200);
    expect(got.data).toEqual({ echo: { model: 'm', n: 1 }, auth: 'Bearer sk-test', key: 'k1' });
    expect(got.headers.get('x-ratelimit-remaining-requests')).toBe('9');
  });

  it("rejects a 429 as the SDK does, so the upstream's error and wait are read from it", async () => {
    const failure = classifyError(await call('/limited').catch((e: unknown) => e), Date.now());
    expect(failure).toMatchObject({ kind: 'status', status: 429, retryable: true, retryAfterMs: 1500, message: 'slow down' });
    expect(failure.upstream).toMatchObject({ type: 'requests', code: 'rate_limit_exceeded' });
  });

  it('rejects an error answered in plain text with that text as the message', async () => {
    const failure = classifyError(await call('/text-error').catch((e: unknown) => e), Date.now());
    expect(failure).toMatchObject({ kind: 'status', status: 502, retryable: true });
    expect(failure.message).toContain('bad gateway');
  });

  it('rejects a 2xx whose JSON does not parse as a protocol error, not retried', async () => {
    expect(classifyError(await call('/garbage').catch((e: unknown) => e), Date.now())).toMatchObject({ kind: 'protocol', retryable: false });
  });

  it('rejects an answer cut off mid-body as a lost connection, retried', async () => {
    expect(classifyError(await call('/cut').catch((e: unknown) => e), Date.now())).toMatchObject({ kind: 'connection', retryable: true });
  });

  it('rejects when nothing listens as a connection error, retried', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const e = await post({ baseURL: `http://127.0.0.1:${port}/v1`, path: '/ok', apiKey: 'k', body: {}, signal: new AbortController().signal }).catch(
      (err: unknown) => err,
    );
    expect(classifyError(e, Date.now())).toMatchObject({ kind: 'connection', retryable: true });
  });

  it('stops a call whose signal aborts, with the abort error', async () => {
    const abort = new AbortController();
    const pending = call('/hang', abort.signal).catch((e: unknown) => e);
    setTimeout(() => abort.abort(), 30);
    expect(classifyError(await pending, Date.now())).toMatchObject({ kind: 'timeout', message: 'call aborted' });
  });
});
