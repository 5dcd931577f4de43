// The HTTP front door's edges over real sockets: what node's parser, its timeouts and the body
// reader do to a client (app.inject() goes around all three).
import { execFile } from 'node:child_process';
import { createConnection } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendReply } from '@sluice/bus';
import { KEYS, startHarness, type Harness } from './testing.js';
import { answer as upstreamAnswer, chatResult, expectErrorShape, type ErrorBody } from '@sluice/contracts/testing';

/** Short enough for a test, long enough that the streaming answers below outlast it several times. */
const REQUEST_TIMEOUT_MS = 600;
/** node looks for timed-out requests once a second (HTTP_SERVER_OPTIONS). */
const CHECK_INTERVAL_MS = 1000;
const LIMIT = 1_048_576;
const run = promisify(execFile);

let h: Harness;
let chatUrl: string;

beforeAll(async () => {
  h = await startHarness();
  await h.applyConfig(edges);
  chatUrl = `${h.baseURL}/chat/completions`;
});
afterAll(async () => {
  await h?.stop();
});

function edges(c: Parameters<Parameters<Harness['applyConfig']>[0]>[0]) {
  return {
    ...c,
    ingress: {
      ...c.ingress,
      maxBodyBytes: LIMIT,
      defaultDeadlineMs: 10_000,
      http: {
        requestTimeoutMs: REQUEST_TIMEOUT_MS,
        headersTimeoutMs: REQUEST_TIMEOUT_MS,
        keepAliveTimeoutMs: 72_000,
        idleTimeoutMs: 120_000,
        maxConnections: 4096,
      },
    },
  };
}

const authorized = { authorization: `Bearer ${KEYS.acme}`, 'content-type': 'application/json' };

type UploadMode = 'http-chunked' | 'http-one-write' | 'http-length' | 'fetch-stream';
type Upload = { status: number; body: string } | { error: string };

/**
 * Posts a 2 MB chat request (twice the limit, the upload) `count` times from a client
 * process of its own (fixtures/upload-client.mjs says why it must be one).
 */
async function uploadFromAnotherProcess(mode: UploadMode, count: number): Promise<Upload[]> {
  const script = fileURLToPath(new URL('./fixtures/upload-client.mjs', import.meta.url));
  const { stdout } = await run(process.execPath, [script, chatUrl, KEYS.acme, mode, String(count)], { maxBuffer: 1 << 20 });
  return JSON.parse(stdout) as Upload[];
}

type RefusedMode = 'no-key' | 'over-limit' | 'bad-header' | 'two-lengths' | 'chunked-no-type';

/**
 * Sends a request ingress refuses before reading all of it (`bytes` of body) `count` times from a
 * client process of its own on a raw socket (fixtures/refused-client.mjs), and returns what each
 * attempt got: the status and error code, or the socket error that came instead of an answer.
 */
async function refusedFromAnotherProcess(mode: RefusedMode, bytes: number, count: number): Promise<string[]> {
  const script = fileURLToPath(new URL('./fixtures/refused-client.mjs', import.meta.url));
  const { stdout } = await run(process.execPath, [script, String(h.ingress.port), KEYS.acme, mode, String(bytes), String(count)], { maxBuffer: 1 << 20 });
  return (JSON.parse(stdout) as Upload[]).map((u) => {
    if ('error' in u) return u.error;
    const body = JSON.parse(u.body) as ErrorBody;
    expectErrorShape(body, body.error.code);
    return `${u.status} ${body.error.code}`;
  });
}

/** Every attempt got the 413 in the catalogue's shape (the list of what each got, when not). */
function expectAll413(uploads: Upload[]): void {
  const outcomes = uploads.map((u) => ('error' in u ? u.error : `${u.status} ${(JSON.parse(u.body) as ErrorBody).error.code}`));
  expect(outcomes).toEqual(uploads.map(() => '413 body_too_large'));
  for (const u of uploads) expectErrorShape(JSON.parse((u as { body: string }).body), 'body_too_large');
}

/** What came back on a raw socket: the status, the parsed body, when the server closed. */
interface RawAnswer {
  status: number;
  body: unknown;
  closedAfterMs: number;
}

/** The status and the body (parsed when it is JSON) of the response read on a raw socket. */
function answerIn(text: string): { status: number; body: unknown } {
  const raw = text.slice(text.indexOf('\r\n\r\n') + 4);
  let body: unknown = raw;
  try {
    body = JSON.parse(raw);
  } catch {
    // not JSON: the assertion on it will say so
  }
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), body };
}

/** Writes `parts` on a raw socket `gapMs` apart and reads until the server closes. */
function rawExchange(parts: string[], gapMs = 0): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = createConnection(h.ingress.port, '127.0.0.1');
    let text = '';
    let timer: NodeJS.Timeout | undefined;
    const writeNext = (i: number) => {
      if (i >= parts.length || !socket.writable) return;
      socket.write(parts[i]!);
      timer = setTimeout(() => writeNext(i + 1), gapMs);
    };
    socket.on('connect', () => writeNext(0));
    socket.on('data', (d) => (text += d.toString()));
    socket.on('error', (e) => {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ECONNRESET' && code !== 'EPIPE') reject(e);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ ...answerIn(text), closedAfterMs: Date.now() - started });
    });
  });
}

describe('HTTP edges: a body over the limit', () => {
  it('is answered 413 body_too_large to a client writing 2 MB chunked before it reads, 20 times running', async () => {
    expectAll413(await uploadFromAnotherProcess('http-chunked', 20));
  });

  it('is answered 413 when the 2 MB goes out in one write, and with a Content-Length', async () => {
    expectAll413(await uploadFromAnotherProcess('http-one-write', 20));
    expectAll413(await uploadFromAnotherProcess('http-length', 20));
  });

  it('is answered 413 to fetch streaming the body, and to the openai SDK', async () => {
    expectAll413(await uploadFromAnotherProcess('fetch-stream', 20));
    const sdk = new OpenAI({ baseURL: h.baseURL, apiKey: KEYS.acme, maxRetries: 0 });
    const e = await sdk.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'x'.repeat(2_000_000) }] }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(APIError);
    expect([(e as APIError).status, (e as APIError).code]).toEqual([413, 'body_too_large']);
    const event = await h.lastRejected('acme');
    expect(event.data).toMatchObject({ code: 'body_too_large', status: 413, stage: 'ingress' });
  });

  it('leaves the server answering ordinary requests', async () => {
    const res = await fetch(chatUrl, { method: 'POST', headers: authorized, body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }) });
    expect(res.status).toBe(200);
  });
});

describe('HTTP edges: a request refused before it is read whole', () => {
  const MIB = 1_048_576;

  it('answers a 5 MiB body without a key 401 missing_api_key, not a reset, 20 times running', async () => {
    expect(await refusedFromAnotherProcess('no-key', 5 * MIB, 20)).toEqual(Array(20).fill('401 missing_api_key'));
  });

  it('answers a 5 MiB body with a key 413 body_too_large', async () => {
    expect(await refusedFromAnotherProcess('over-limit', 5 * MIB, 10)).toEqual(Array(10).fill('413 body_too_large'));
  });

  it('answers a header value node cannot parse 400 invalid_request, with 5 MiB behind it', async () => {
    expect(await refusedFromAnotherProcess('bad-header', 5 * MIB, 20)).toEqual(Array(20).fill('400 invalid_request'));
  });

  it('answers two Content-Lengths 400 invalid_request', async () => {
    expect(await refusedFromAnotherProcess('two-lengths', 2 * MIB, 20)).toEqual(Array(20).fill('400 invalid_request'));
  });

  it('answers a chunked body with no content type 400 invalid_request', async () => {
    expect(await refusedFromAnotherProcess('chunked-no-type', 5 * MIB, 20)).toEqual(Array(20).fill('400 invalid_request'));
  });
});

/** What a client sending until the server closed got: the answer, and whether the server closed before it sent all it meant to. */
interface CutAnswer {
  status: number;
  body: unknown;
  cut: boolean;
}

/**
 * Writes `head`, then `piece` over and over (`gapMs` apart; 0: as fast as the socket drains)
 * until `total` bytes of body are out or the server closes the connection, and reads meanwhile.
 */
function sendUntilClosed(head: string, piece: Buffer, gapMs: number, total: number): Promise<CutAnswer> {
  return new Promise((resolve) => {
    // half-open: the server's FIN after its answer does not end this side, only the server's close does
    const socket = createConnection({ port: h.ingress.port, host: '127.0.0.1', allowHalfOpen: true });
    let text = '';
    let sent = 0;
    socket.on('data', (d) => (text += d.toString('latin1')));
    // EPIPE, ECONNRESET: the server closed while the client was still sending, which is what is looked for
    socket.on('error', () => undefined);
    socket.on('close', () => resolve({ ...answerIn(text), cut: sent < total }));
    socket.on('connect', () => {
      void (async () => {
        socket.write(head);
        while (sent < total && socket.writable) {
          const drained = socket.write(piece);
          sent += piece.length;
          if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
          else if (!drained) await new Promise((r) => socket.once('drain', r).once('close', r));
        }
        // all of it sent and still open: this side is done, and the server closes after reading it
        if (socket.writable) socket.end();
      })();
    });
  });
}

describe('HTTP edges: the linger after a refusal is bounded', () => {
  const unkeyed = (length: number) => `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;

  it('cuts a client that trickles its body on after its 401', async () => {
    // 10 bytes every 20 ms: 1 MB would take half an hour; the linger lasts the request timeout
    const res = await sendUntilClosed(unkeyed(1_000_000), Buffer.from('x'.repeat(10)), 20, 1_000_000);
    expect(res.status).toBe(401);
    expectErrorShape(res.body, 'missing_api_key');
    expect(res.cut).toBe(true);
  });

  /** Runs `body` with a request timeout (the linger's time bound) far longer than the test: only bytes or the client end a linger. */
  async function withLongLinger(body: () => Promise<void>): Promise<void> {
    await h.applyConfig((c) => {
      const e = edges(c);
      return { ...e, ingress: { ...e.ingress, http: { ...e.ingress.http, requestTimeoutMs: 600_000, headersTimeoutMs: 600_000 } } };
    });
    try {
      await body();
    } finally {
      await h.applyConfig(edges);
    }
  }

  it('reads the rest of a 5 MiB body after its 401, and closes once the client is done', async () => {
    await withLongLinger(async () => {
      const total = 5 * 1_048_576;
      const res = await sendUntilClosed(unkeyed(total), Buffer.alloc(65_536, 'x'), 0, total);
      expect(res.status).toBe(401);
      expectErrorShape(res.body, 'missing_api_key');
      expect(res.cut).toBe(false);
    });
  });

  it('cuts a client that pours a 64 MiB body on after its 401, past the bytes it drops', async () => {
    await withLongLinger(async () => {
      const total = 64 * 1_048_576;
      const res = await sendUntilClosed(unkeyed(total), Buffer.alloc(65_536, 'x'), 0, total);
      expect(res.cut).toBe(true);
    });
  });

  it('tells a keep-alive client Connection: close with its 401, and reads the rest of its body', async () => {
    const res = await fetch(chatUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(5 * 1_048_576) }] }),
    });
    expect([res.status, res.headers.get('connection')]).toEqual([401, 'close']);
    expectErrorShape(await res.json(), 'missing_api_key');
  });
});

describe('HTTP edges: slow clients', () => {
  it('cuts a body trickled a few bytes at a time with 408 request_timeout, published as chat.rejected', async () => {
    const head = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEYS.acme}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n`;
    const trickle = [head, ...'{"messages":[{"role":"user","content":"slow'.match(/.{1,3}/g)!];
    const res = await rawExchange(trickle, 200);
    expect(res.status).toBe(408);
    expectErrorShape(res.body, 'request_timeout');
    expect(res.closedAfterMs).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 50);
    expect(res.closedAfterMs).toBeLessThan(REQUEST_TIMEOUT_MS + CHECK_INTERVAL_MS + 2000);
    for (let i = 0; ; i++) {
      const event = await h.lastRejected('acme');
      if (event.data.code === 'request_timeout') {
        expect(event.data.status).toBe(408);
        break;
      }
      if (i > 100) throw new Error(`no chat.rejected for the timeout; last: ${event.data.code}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  });

  it('cuts headers trickled a few bytes at a time with 408 request_timeout', async () => {
    const res = await rawExchange(['POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n', ...'x-slow: abcdefghijklmnopqrstuvwxyz'.split('')], 100);
    expect(res.status).toBe(408);
    expectErrorShape(res.body, 'request_timeout');
    expect(res.closedAfterMs).toBeLessThan(REQUEST_TIMEOUT_MS + CHECK_INTERVAL_MS + 2000);
  });

  it('does not cut an answer that streams for longer than the request timeout', async () => {
    const seen = h.requested.length;
    const res = fetch(chatUrl, {
      method: 'POST',
      headers: authorized,
      body: JSON.stringify({ messages: [{ role: 'user', content: 'silent' }], stream: true }),
    });
    for (let i = 0; h.requested.length === seen; i++) {
      if (i > 500) throw new Error('the request never reached the stream');
      await new Promise((r) => setTimeout(r, 10));
    }
    const event = h.requested[seen]!;
    const { replyTo } = event.data.ctx;
    const model = 'small';
    const started = Date.now();
    // five chunks 500 ms apart: 2.5 s, four request timeouts and two checks
    const whole = upstreamAnswer(model, 1, 5, 'one two three four five');
    for (const piece of ['one ', 'two ', 'three ', 'four ', 'five']) {
      const chunk = {
        id: 'chatcmpl-x',
        object: 'chat.completion.chunk',
        created: 0,
        model,
        choices: [{ index: 0, delta: { content: piece }, finish_reason: null }],
      };
      sendReply(h.bus.nc, replyTo, { requestId: event.requestId, model, chunk });
      await new Promise((r) => setTimeout(r, 500));
    }
    sendReply(h.bus.nc, replyTo, chatResult(event.requestId, whole, { created: Math.floor(started / 1000) }));
    const answer = await res;
    expect(answer.status).toBe(200);
    const text = await answer.text();
    expect(Date.now() - started).toBeGreaterThan(REQUEST_TIMEOUT_MS + CHECK_INTERVAL_MS);
    const events = text.split('\n\n').filter(Boolean);
    expect(events.at(-1)).toBe('data: [DONE]');
    const content = events
      .slice(0, -1)
      .map((e) => JSON.parse(e.slice('data: '.length)).choices[0]?.delta.content ?? '')
      .join('');
    expect(content).toBe('one two three four five');
  });

  it('does not cut a whole answer that comes after the request timeout', async () => {
    const seen = h.requested.length;
    const res = fetch(chatUrl, { method: 'POST', headers: authorized, body: JSON.stringify({ messages: [{ role: 'user', content: 'silent' }] }) });
    for (let i = 0; h.requested.length === seen; i++) {
      if (i > 500) throw new Error('the request never reached the stream');
      await new Promise((r) => setTimeout(r, 10));
    }
    const event = h.requested[seen]!;
    await new Promise((r) => setTimeout(r, REQUEST_TIMEOUT_MS + CHECK_INTERVAL_MS + 200));
    sendReply(h.bus.nc, event.data.ctx.replyTo, chatResult(event.requestId, upstreamAnswer('small', 1, 3, 'late but whole')));
    const answer = await res;
    expect(answer.status).toBe(200);
    expect(((await answer.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content).toBe('late but whole');
  });
});

describe('HTTP edges: framework-level answers', () => {
  it('answers headers over 16 KiB 431 headers_too_large', async () => {
    const res = await fetch(`${h.baseURL}/models`, { headers: { authorization: `Bearer ${KEYS.acme}`, 'x-padding': 'p'.repeat(20_000) } });
    expect(res.status).toBe(431);
    expectErrorShape(await res.json(), 'headers_too_large');
  });

  it('answers unknown methods and paths 404 not_found', async () => {
    for (const [method, path] of [
      ['DELETE', '/v1/chat/completions'],
      ['OPTIONS', '/v1/models'],
      ['GET', `/v1/${'p'.repeat(5000)}`],
    ] as const) {
      const res = await fetch(`${h.baseURL.replace('/v1', '')}${path}`, { method });
      expect([method, res.status]).toEqual([method, 404]);
      expectErrorShape(await res.json(), 'not_found');
    }
  });

  it('applies a changed keep-alive timeout live, and says so in Keep-Alive', async () => {
    expect((await fetch(`${h.baseURL.replace('/v1', '')}/healthz`)).headers.get('keep-alive')).toBe('timeout=72');
    await h.applyConfig((c) => {
      const e = edges(c);
      return { ...e, ingress: { ...e.ingress, http: { ...e.ingress.http, keepAliveTimeoutMs: 5000 } } };
    });
    try {
      expect((await fetch(`${h.baseURL.replace('/v1', '')}/healthz`)).headers.get('keep-alive')).toBe('timeout=5');
    } finally {
      await h.applyConfig(edges);
    }
  });
});
