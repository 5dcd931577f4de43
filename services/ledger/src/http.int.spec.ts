// The ledger's HTTP edges over real sockets (app.inject() skips node's parser, timeouts and
// connection handling, which is where these answers come from).
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from './db.js';
import { buildApp, MAX_ID_LENGTH } from './http.js';
import { migrate } from './migrate.js';
import { expectErrorShape } from '@sluice/contracts/testing';
import { asAdmin, readersConfig } from './auth-fixtures.js';

const SHORT_TIMEOUT_MS = 600;
const config = readersConfig();

let dataDir: string;
let db: Db;
let app: FastifyInstance;
let base: string;
let port: number;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'sluice-ledger-http-'));
  db = createDb({ dataDir });
  await migrate(db);
  app = buildApp({ db, positionName: 'ledger', config: () => config, http: { requestTimeoutMs: SHORT_TIMEOUT_MS, headersTimeoutMs: SHORT_TIMEOUT_MS } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
});
afterAll(async () => {
  await app?.close();
  await db?.destroy();
  rmSync(dataDir, { recursive: true, force: true });
});

/** What came back on a raw socket, the status line and the parsed body. */
interface RawAnswer {
  status: number;
  body: unknown;
  text: string;
  /** ms from the first byte sent to the socket's close. */
  closedAfterMs: number;
}

/**
 * Writes `parts` on a raw socket, `gapMs` apart (the first at once), and reads until the server
 * closes. Stops writing when the server has closed.
 */
function rawExchange(parts: string[], gapMs = 0): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = createConnection(port, '127.0.0.1');
    let text = '';
    let timer: NodeJS.Timeout | undefined;
    const writeNext = (i: number) => {
      if (i >= parts.length || socket.destroyed || !socket.writable) return;
      socket.write(parts[i]!);
      timer = setTimeout(() => writeNext(i + 1), gapMs);
    };
    socket.on('connect', () => writeNext(0));
    socket.on('data', (d) => (text += d.toString()));
    socket.on('error', (e) => {
      if ((e as NodeJS.ErrnoException).code !== 'ECONNRESET' && (e as NodeJS.ErrnoException).code !== 'EPIPE') reject(e);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      const rawBody = text.slice(text.indexOf('\r\n\r\n') + 4);
      let body: unknown;
      try {
        body = JSON.parse(rawBody);
      } catch {
        body = rawBody;
      }
      resolve({ status, body, text, closedAfterMs: Date.now() - started });
    });
  });
}

describe('ledger HTTP: framework-level errors are in the catalogue shape', () => {
  it('answers a 5,000-character request id 404 not_found, not fastify 414', async () => {
    const res = await fetch(`${base}/v1/requests/${'r'.repeat(5000)}`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toContain('application/json');
    const error = expectErrorShape(await res.json(), 'not_found');
    expect(error.message).toContain(`at most ${MAX_ID_LENGTH} characters`);
    expect(error.type).toBe('invalid_request_error');
  });

  it('answers an unknown id at the length limit 404 not_found from the route', async () => {
    const res = await fetch(`${base}/v1/requests/${'r'.repeat(MAX_ID_LENGTH)}`, { headers: asAdmin });
    expect(res.status).toBe(404);
    expect(expectErrorShape(await res.json(), 'not_found').message).toContain('has no request');
  });

  it('answers unknown routes and methods 404 not_found', async () => {
    for (const [method, path] of [
      ['GET', '/v1/nope'],
      ['POST', '/v1/costs'],
      ['DELETE', '/v1/requests/req_x'],
      ['OPTIONS', '/v1/slo'],
    ] as const) {
      const res = await fetch(`${base}${path}`, { method, ...(method === 'POST' ? { body: '{"x":', headers: { 'content-type': 'application/json' } } : {}) });
      expect([method, res.status]).toEqual([method, 404]);
      expectErrorShape(await res.json(), 'not_found');
    }
  });

  it('answers a URL that does not decode 400 invalid_request', async () => {
    const res = await rawExchange([`GET /v1/requests/%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]);
    expect(res.status).toBe(400);
    expectErrorShape(res.body, 'invalid_request');
  });

  it('answers malformed HTTP 400 invalid_request', async () => {
    const res = await rawExchange([`GET /v1/costs HTTP/1.1\r\nHost: x\r\nthis is not a header\r\n\r\n`]);
    expect(res.status).toBe(400);
    expectErrorShape(res.body, 'invalid_request');
  });

  it('answers headers over 16 KiB 431 headers_too_large', async () => {
    const res = await fetch(`${base}/v1/costs`, { headers: { ...asAdmin, 'x-padding': 'p'.repeat(20_000) } });
    expect(res.status).toBe(431);
    expectErrorShape(await res.json(), 'headers_too_large');
  });
});

describe('ledger HTTP: timeouts and limits', () => {
  it('cuts headers trickled a few bytes at a time with 408 request_timeout, within the timeout and a check interval', async () => {
    const trickle = ['GET /v1/costs HTTP/1.1\r\nHost: x\r\n', ...'x-slow: abcdefghijklmnopqrstuvwxyz'.split('')];
    const res = await rawExchange(trickle, 100);
    expect(res.status).toBe(408);
    expectErrorShape(res.body, 'request_timeout');
    expect(res.closedAfterMs).toBeGreaterThanOrEqual(SHORT_TIMEOUT_MS - 50);
    expect(res.closedAfterMs).toBeLessThan(SHORT_TIMEOUT_MS + 1000 + 2000);
  });

  it('advertises its keep-alive timeout', async () => {
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers.get('keep-alive')).toBe('timeout=72');
  });

  it('closes connections past maxConnections at once, and serves again once under it', async () => {
    const small = buildApp({ db, positionName: 'ledger', config: () => config, http: { maxConnections: 1 } });
    await small.listen({ host: '127.0.0.1', port: 0 });
    try {
      const smallPort = (small.server.address() as AddressInfo).port;
      const holder = createConnection(smallPort, '127.0.0.1');
      await new Promise((r) => holder.once('connect', r));
      await new Promise((r) => setTimeout(r, 50));
      const refused = await fetch(`http://127.0.0.1:${smallPort}/healthz`).then(
        (r) => r.status,
        (e: Error) => e,
      );
      expect(refused).toBeInstanceOf(Error);
      holder.destroy();
      await new Promise((r) => setTimeout(r, 50));
      expect((await fetch(`http://127.0.0.1:${smallPort}/healthz`)).status).toBe(200);
    } finally {
      await small.close();
    }
  });
});
