// Sends the fuzz cases (arbitraries.ts) to the two front doors and judges each answer: a coded 4xx
// in OpenAI's error shape, or a 2xx for a case that happens to be valid; never a 5xx, never
// silence past the case's timeout. The HTTP door is spoken to on a raw socket, so a case can lie
// in its Content-Length, send bytes node's client would refuse, or send its body slowly.
import { createConnection } from 'node:net';
import fc from 'fast-check';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { Headers, Subjects } from '@sluice/contracts';
import { ENDPOINTS, httpCase, natsCase, type FuzzTarget, type FuzzWeights, type HttpCase, type NatsCase } from './arbitraries.js';

/** What came back for a case: the status (0: the connection ended with no answer), the body's text. */
interface Answer {
  status: number;
  body: string;
}

/** Counts of one run, per door: cases sent and the statuses (or error codes) seen. */
export interface Tally {
  seed: number;
  cases: { http: number; nats: number };
  statuses: { http: Record<string, number>; nats: Record<string, number> };
  ms: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The request's bytes as the case frames them (the head as latin-1, so any byte 0x00-0xff can be in a header). */
function requestHead(c: HttpCase, host: string): string {
  const lines = [`POST ${c.path} HTTP/1.1`, `host: ${host}`, 'connection: close'];
  for (const [name, value] of c.headers) lines.push(`${name}: ${value}`);
  const n = c.body.length;
  switch (c.framing.kind) {
    case 'length':
      lines.push(`content-length: ${n}`);
      break;
    case 'chunked':
      lines.push('transfer-encoding: chunked');
      break;
    case 'short':
      lines.push(`content-length: ${Math.max(0, n - c.framing.by)}`);
      break;
    case 'long-then-close':
    case 'long-then-wait':
      lines.push(`content-length: ${n + c.framing.by}`);
      break;
    case 'bad-length':
      lines.push(`content-length: ${c.framing.value}`);
      break;
    case 'two-lengths':
      lines.push(`content-length: ${n}`, `content-length: ${c.framing.other}`);
      break;
    default: {
      const _exhaustive: never = c.framing;
      return _exhaustive;
    }
  }
  return `${lines.join('\r\n')}\r\n\r\n`;
}

function bodyPieces(c: HttpCase): Buffer[] {
  const size = Math.ceil(c.body.length / c.pieces) || 1;
  const parts: Buffer[] = [];
  for (let i = 0; i < c.body.length; i += size) parts.push(c.body.subarray(i, i + size));
  if (c.framing.kind !== 'chunked') return parts;
  return [...parts.map((p) => Buffer.concat([Buffer.from(`${p.length.toString(16)}\r\n`), p, Buffer.from('\r\n')])), Buffer.from('0\r\n\r\n')];
}

/**
 * The first response in `raw`: its status and its body (a chunked body decoded); `complete` once
 * all of it is there (its Content-Length, or its last chunk), so a reader need not wait for the
 * server to close.
 */
function firstResponse(raw: Buffer): Answer & { complete: boolean } {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return { status: 0, body: raw.toString('latin1').slice(0, 200), complete: false };
  const head = raw.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '')?.[1] ?? 0);
  const header = (name: string) =>
    head
      .slice(1)
      .find((l) => l.toLowerCase().startsWith(`${name}:`))
      ?.slice(name.length + 1)
      .trim();
  let rest = raw.subarray(end + 4);
  const length = header('content-length');
  if (length !== undefined) return { status, body: rest.subarray(0, Number(length)).toString('utf8'), complete: rest.length >= Number(length) };
  if (header('transfer-encoding')?.toLowerCase() !== 'chunked') return { status, body: rest.toString('utf8'), complete: false };
  const parts: Buffer[] = [];
  for (;;) {
    const line = rest.indexOf('\r\n');
    if (line < 0) return { status, body: Buffer.concat(parts).toString('utf8'), complete: false };
    const size = parseInt(rest.subarray(0, line).toString('latin1'), 16);
    if (size === 0) return { status, body: Buffer.concat(parts).toString('utf8'), complete: rest.indexOf('\r\n\r\n') >= 0 };
    if (!(size > 0) || rest.length < line + 2 + size + 2) return { status, body: Buffer.concat(parts).toString('utf8'), complete: false };
    parts.push(rest.subarray(line + 2, line + 2 + size));
    rest = rest.subarray(line + 2 + size + 2);
  }
}

/**
 * Sends one case on a fresh connection and reads its first response, to its end (its
 * Content-Length or last chunk, so a streamed answer is not waited on past its end) or to the
 * server's close. A write the server refused (it answered and closed first) is not an error:
 * what it answered is. Rejects after `timeoutMs` with what had come by then.
 */
function sendHttp(baseUrl: string, c: HttpCase, timeoutMs: number): Promise<Answer> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: url.hostname, port: Number(url.port) });
    const received: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer in ${timeoutMs} ms; got ${JSON.stringify(Buffer.concat(received).toString('latin1').slice(0, 200))}`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      const { status, body } = firstResponse(Buffer.concat(received));
      resolve({ status, body });
    };
    socket.on('data', (d: Buffer) => {
      received.push(d);
      if (firstResponse(Buffer.concat(received)).complete) socket.destroy();
    });
    socket.on('close', done);
    // EPIPE/ECONNRESET after the server answered and closed: the answer is what counts
    socket.on('error', () => undefined);
    socket.on('connect', () => {
      void (async () => {
        socket.write(Buffer.from(requestHead(c, url.host), 'latin1'));
        for (const [i, piece] of bodyPieces(c).entries()) {
          if (socket.destroyed) return;
          if (i > 0 && c.gapMs > 0) await sleep(c.gapMs);
          socket.write(piece);
        }
        // a Content-Length longer than the body: the client says it is done sending (or waits for the request timeout)
        if (c.framing.kind === 'long-then-close') socket.end();
      })();
    });
  });
}

/** Sends one case to the NATS door and returns its reply's status (200 for an answer or a chunk, the error's otherwise). */
async function sendNats(nc: NatsConnection, c: NatsCase, timeoutMs: number): Promise<Answer> {
  const h = natsHeaders();
  for (const [name, value] of c.headers) h.set(name, value);
  const msg = await nc.request(Subjects.chat(c.tenant), c.payload, { headers: h, timeout: timeoutMs });
  const text = msg.string();
  const reply = JSON.parse(text) as { error?: { status?: unknown } };
  return { status: reply.error ? Number(reply.error.status) : 200, body: text };
}

/** Whether bytes, read as the doors read them (UTF-8, invalid sequences replaced), are a JSON object. */
function isJsonObject(bytes: Buffer): boolean {
  try {
    const v: unknown = JSON.parse(bytes.toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}

/** Content types no door takes a body with. */
const NOT_JSON = new Set(['', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'json']);

/**
 * Why an HTTP case cannot be a valid request, so that a 2xx for it breaks the property; undefined
 * when it may be valid. Only what is certain counts (a junk header the door may ignore does not).
 */
function refusableHttp(c: HttpCase, t: FuzzTarget): string | undefined {
  // a router may drop the query, a trailing slash, doubled slashes and dot segments: only a path that is none of these apart counts
  const path = new URL(c.path, 'http://door').pathname.replace(/\/+/g, '/').replace(/\/$/, '');
  if (path !== ENDPOINTS[c.endpoint].path) return `the path ${c.path}`;
  const header = (name: string) => c.headers.find(([n]) => n === name)?.[1];
  const auth = header('authorization');
  // over HTTP the other tenant's key is as good as the first's: the key names the tenant
  if (auth === undefined || !/^bearer /i.test(auth) || (!auth.includes(t.key) && !auth.includes(t.otherKey))) return 'no key';
  const type = header('content-type');
  if (type === undefined || NOT_JSON.has(type)) return `the content type ${String(type)}`;
  switch (c.framing.kind) {
    case 'length':
    case 'chunked':
      return isJsonObject(c.body) ? undefined : 'a body that is not a JSON object';
    case 'short':
      return isJsonObject(c.body.subarray(0, Math.max(0, c.body.length - c.framing.by))) ? undefined : 'a body cut short that is not a JSON object';
    case 'two-lengths':
      return c.framing.other === c.body.length ? undefined : 'two Content-Lengths';
    case 'long-then-close':
    case 'long-then-wait':
    case 'bad-length':
      return `a Content-Length that lies (${c.framing.kind})`;
    default: {
      const _exhaustive: never = c.framing;
      return _exhaustive;
    }
  }
}

/** Why a NATS case cannot be a valid request (as refusableHttp), or undefined. */
function refusableNats(c: NatsCase, t: FuzzTarget): string | undefined {
  if (c.tenant !== t.tenant) return `the subject's tenant ${c.tenant}`;
  const header = (name: string) => c.headers.find(([n]) => n === name)?.[1];
  if (header(Headers.tenantKey) !== t.key) return 'no key of the tenant';
  const endpoint = header(Headers.endpoint);
  // an empty or blank header is as good as none (chat completions)
  if (endpoint !== undefined && endpoint.trim() !== '' && !Object.values(ENDPOINTS).some((e) => e.nats === endpoint)) return `the endpoint ${endpoint}`;
  return isJsonObject(c.payload) ? undefined : 'a payload that is not a JSON object';
}

/** The code an error answer carries, or why the answer breaks the property (`refusable`: why the case cannot be valid). */
function judgeHttp(a: Answer, refusable: string | undefined): { ok: true; label: string } | { ok: false; why: string } {
  if (a.status === 200 || a.status === 202) {
    return refusable === undefined ? { ok: true, label: String(a.status) } : { ok: false, why: `status ${a.status} for a case with ${refusable}` };
  }
  if (a.status < 400 || a.status >= 500) return { ok: false, why: `status ${a.status}: ${a.body.slice(0, 300)}` };
  let body: unknown;
  try {
    body = JSON.parse(a.body);
  } catch {
    return { ok: false, why: `status ${a.status} with a body that is not JSON: ${JSON.stringify(a.body.slice(0, 200))}` };
  }
  const error = (body as { error?: Record<string, unknown> }).error;
  const shaped =
    error !== undefined &&
    Object.keys(body as object).length === 1 &&
    Object.keys(error).sort().join() === 'code,message,param,type' &&
    typeof error.code === 'string' &&
    /^[a-z_]+$/.test(error.code) &&
    typeof error.message === 'string' &&
    error.message.length > 0 &&
    typeof error.type === 'string' &&
    (error.param === null || typeof error.param === 'string');
  if (!shaped) return { ok: false, why: `status ${a.status} not in OpenAI's error shape: ${a.body.slice(0, 300)}` };
  return { ok: true, label: `${a.status} ${String(error.code)}` };
}

function judgeNats(a: Answer, refusable: string | undefined): { ok: true; label: string } | { ok: false; why: string } {
  if (a.status === 200) return refusable === undefined ? { ok: true, label: 'answer' } : { ok: false, why: `an answer for a case with ${refusable}` };
  const reply = JSON.parse(a.body) as { requestId?: unknown; error: { code?: unknown; message?: unknown; status?: unknown } };
  const { code, message, status } = reply.error;
  if (typeof status !== 'number' || status < 400 || status >= 500) return { ok: false, why: `status ${String(status)}: ${a.body.slice(0, 300)}` };
  if (typeof code !== 'string' || !/^[a-z_]+$/.test(code) || typeof message !== 'string' || typeof reply.requestId !== 'string')
    return { ok: false, why: `an error reply without its code, message or request id: ${a.body.slice(0, 300)}` };
  return { ok: true, label: `${status} ${code}` };
}

/** One case to send alone: its door and fast-check's path within that door's run (`FUZZ_PATH=http:162`). */
export interface Replay {
  door: 'http' | 'nats';
  path: string;
}

export interface FuzzRun {
  /** The HTTP door's base URL (`http://127.0.0.1:<port>`). */
  httpUrl: string;
  nc: NatsConnection;
  target: FuzzTarget;
  weights: FuzzWeights;
  /** Cases per door. */
  runs: { http: number; nats: number };
  seed: number;
  /** Shrink a failing case to a smallest one (`FUZZ_SHRINK=1`): each step resends cases, some of which wait for timeouts. */
  shrink?: boolean;
  /** Send only this case (with the same `seed`), as a failure names it. */
  replay?: Replay;
  /** How long one case may go unanswered (past the server's request timeout for the slow cases). */
  caseTimeoutMs: number;
}

/** A failure's report, cut in the middle past 20,000 characters (a body past the size limit is megabytes). */
const clip = (text: string) => (text.length <= 20_000 ? text : `${text.slice(0, 10_000)} …(${text.length - 20_000} characters)… ${text.slice(-10_000)}`);

/**
 * Runs both doors' properties (fast-check, seeded) and returns the counts. A case that breaks the
 * property fails with fast-check's report (the seed, the path and the counterexample) under a
 * line that says how to send that case alone: `FUZZ_SEED=<seed> FUZZ_PATH=<door>:<path>`.
 */
export async function fuzzDoors(run: FuzzRun): Promise<Tally> {
  const started = performance.now();
  const tally: Tally = { seed: run.seed, cases: { http: 0, nats: 0 }, statuses: { http: {}, nats: {} }, ms: 0 };
  const count = (door: 'http' | 'nats', label: string) => {
    tally.cases[door]++;
    tally.statuses[door][label] = (tally.statuses[door][label] ?? 0) + 1;
  };
  const check = async <T>(door: 'http' | 'nats', seed: number, property: fc.IAsyncProperty<T>) => {
    if (run.replay && run.replay.door !== door) return;
    try {
      // a path replays from its case on: one run is that case alone
      await fc.assert(property, { seed, endOnFailure: !run.shrink, ...(run.replay ? { path: run.replay.path, numRuns: 1 } : { numRuns: run.runs[door] }) });
    } catch (e) {
      const text = e instanceof Error ? e.message : String(e);
      const path = /path: "([^"]+)"/.exec(text)?.[1] ?? '?';
      // fast-check keeps what the property threw (the judge's verdict) as the cause
      const cause = (e as { cause?: unknown }).cause;
      const why = cause instanceof Error ? cause.message : String(cause);
      // no `cause`: its message holds the megabytes clip() cuts, and the runner would print them whole
      // eslint-disable-next-line preserve-caught-error
      throw new Error(`the ${door} door broke the property (${why}); send this case alone with FUZZ_SEED=${run.seed} FUZZ_PATH=${door}:${path}\n${clip(text)}`);
    }
  };
  await check(
    'http',
    run.seed,
    fc.asyncProperty(httpCase(run.target, run.weights), async (c) => {
      const verdict = judgeHttp(await sendHttp(run.httpUrl, c, run.caseTimeoutMs), refusableHttp(c, run.target));
      if (!verdict.ok) throw new Error(verdict.why);
      count('http', verdict.label);
    }),
  );
  await check(
    'nats',
    run.seed + 1,
    fc.asyncProperty(natsCase(run.target), async (c) => {
      const verdict = judgeNats(await sendNats(run.nc, c, run.caseTimeoutMs), refusableNats(c, run.target));
      if (!verdict.ok) throw new Error(verdict.why);
      count('nats', verdict.label);
    }),
  );
  tally.ms = Math.round(performance.now() - started);
  return tally;
}

/**
 * This run's settings from the environment: `FUZZ_SEED` (else `fixedSeed`, else a fresh one),
 * `FUZZ_RUNS` (cases per door, else `runs`), `FUZZ_SHRINK=1` and `FUZZ_PATH=<door>:<path>`.
 */
export function fuzzSettings(runs: number, fixedSeed?: number): { seed: number; runs: number; shrink: boolean; replay?: Replay } {
  const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : (fixedSeed ?? Math.floor(Math.random() * 2 ** 31));
  const asked = /^(http|nats):([\d:]+)$/.exec(process.env.FUZZ_PATH ?? '');
  if (process.env.FUZZ_PATH && !asked) throw new Error(`FUZZ_PATH=${process.env.FUZZ_PATH}: expected <http|nats>:<path>, e.g. http:162`);
  return {
    seed,
    runs: process.env.FUZZ_RUNS ? Number(process.env.FUZZ_RUNS) : runs,
    shrink: process.env.FUZZ_SHRINK === '1',
    ...(asked ? { replay: { door: asked[1] as Replay['door'], path: asked[2]! } } : {}),
  };
}

/** One line per door for the run's output: cases, statuses seen (most first), time. */
export function report(t: Tally): string {
  const line = (door: 'http' | 'nats') =>
    `  ${door}: ${t.cases[door]} cases; ${Object.entries(t.statuses[door])
      .sort((a, b) => b[1] - a[1])
      .map(([s, n]) => `${s} x${n}`)
      .join(', ')}`;
  return `fuzz seed ${t.seed}: ${t.cases.http + t.cases.nats} cases in ${(t.ms / 1000).toFixed(1)} s\n${line('http')}\n${line('nats')}`;
}
