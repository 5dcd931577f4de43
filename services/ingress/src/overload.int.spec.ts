// Overload is shed, not absorbed (docs/input-bounds.md, Overload): ingress in-process with a small
// ingress.maxInFlight and ingress.maxBacklog, over real sockets and a real nats-server.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createConnection } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeJson, sendReply } from '@sluice/bus';
import { eventually } from '@sluice/bus/testing';
import { SluiceClient } from '@sluice/client';
import { Consumers, invokerConsumer, Subjects, Topology, type SluiceConfig } from '@sluice/contracts';
import { answer, chatResult, contentOf, expectErrorShape } from '@sluice/contracts/testing';
import { readBacklog } from './overload-backlog.js';
import { clientError, KEYS, startHarness, type Harness } from './testing.js';

const MAX_IN_FLIGHT = 4;
const MAX_BACKLOG = 5;
/** Short, so a trickling client is cut within the test; node looks for timed-out requests once a second. */
const HEADERS_TIMEOUT_MS = 500;

let h: Harness;
let nc: NatsConnection;
let sluice: SluiceClient;
let chatUrl: string;

function bounds(maxBacklog: number) {
  return (c: SluiceConfig): SluiceConfig => ({
    ...c,
    ingress: {
      ...c.ingress,
      defaultDeadlineMs: 10_000,
      maxInFlight: MAX_IN_FLIGHT,
      maxBacklog,
      http: { requestTimeoutMs: 5000, headersTimeoutMs: HEADERS_TIMEOUT_MS, keepAliveTimeoutMs: 5000, idleTimeoutMs: 20_000, maxConnections: 4096 },
    },
  });
}

beforeAll(async () => {
  h = await startHarness();
  await h.applyConfig(bounds(0));
  nc = await connect({ servers: h.nats.url });
  sluice = new SluiceClient(nc, { tenant: 'acme', key: KEYS.acme, timeoutMs: 5000 });
  chatUrl = `${h.baseURL}/chat/completions`;
});
afterAll(async () => {
  await nc?.close();
  await h?.stop();
});

const headers = { authorization: `Bearer ${KEYS.acme}`, 'content-type': 'application/json' };
const post = (content: string, extra: Record<string, string> = {}, more: Record<string, unknown> = {}, signal?: AbortSignal) =>
  fetch(chatUrl, {
    method: 'POST',
    headers: { ...headers, ...extra },
    body: JSON.stringify({ messages: [{ role: 'user', content }], ...more }),
    ...(signal ? { signal } : {}),
  });

/** The chat.requested events that reach the stream after `seen`, once there are `count` of them. */
async function requestedAfter(seen: number, count: number) {
  await eventually(() => h.requested.length >= seen + count, 5000);
  return h.requested.slice(seen, seen + count);
}

/** The last chat.rejected of acme, once it is the 503 of a shed request. */
async function shedRejected() {
  return eventually(async () => {
    const event = await h.lastRejected('acme').catch(() => undefined);
    return event?.data.code === 'service_busy' ? event : false;
  }, 5000);
}

describe('the in-flight bound', () => {
  it('answers the request past maxInFlight 503 service_busy with Retry-After at once on both doors, answers the admitted ones, then lets requests in again', async () => {
    const seen = h.requested.length;
    // four requests the fake stage does not answer: they hold the four places until answered below
    const held = Array.from({ length: MAX_IN_FLIGHT }, () => post('silent'));
    const events = await requestedAfter(seen, MAX_IN_FLIGHT);
    expect(h.ingress.inFlight()).toBe(MAX_IN_FLIGHT);

    // answered while the four still wait: nothing queues it behind them
    const shed = await post('one too many');
    expect(shed.status).toBe(503);
    expect(shed.headers.get('retry-after')).toBe('1');
    expect(shed.headers.get('retry-after-ms')).toBe('1000');
    expectErrorShape(await shed.json(), 'service_busy');
    const event = await shedRejected();
    expect(event.data).toMatchObject({ status: 503, retryAfterMs: 1000, stage: 'ingress' });

    const byNats = await clientError(sluice.chat({ messages: [{ role: 'user', content: 'one too many by NATS' }] }));
    expect([byNats.code, byNats.status, byNats.retryAfterMs]).toEqual(['service_busy', 503, 1000]);
    // a shed request never reached the stream
    expect(h.requested.length).toBe(seen + MAX_IN_FLIGHT);

    for (const e of events) sendReply(h.bus.nc, e.data.ctx.replyTo, chatResult(e.requestId, answer('small', 1, 2, 'held, then answered')));
    for (const res of await Promise.all(held)) {
      expect(res.status).toBe(200);
      expect(contentOf(await res.json())).toBe('held, then answered');
    }
    await eventually(() => h.ingress.inFlight() === 0, 5000);
    expect(contentOf(await (await post('after')).json())).toBe('echo: after');
    expect(contentOf((await sluice.chat({ messages: [{ role: 'user', content: 'after by NATS' }] })).body)).toBe('echo: after by NATS');
  });

  it('gives each place back once on every path: whole, streamed, async, refused, a client that left', async () => {
    expect((await post('whole')).status).toBe(200);
    const streamed = await post('streamed', {}, { stream: true });
    expect(streamed.status).toBe(200);
    await streamed.text();
    expect((await post('later', { 'x-sluice-async': 'true' })).status).toBe(202);
    expect((await post('refused', {}, { temperature: 'hot' })).status).toBe(400);
    const seen = h.requested.length;
    const leaving = new AbortController();
    const left = post('silent', {}, {}, leaving.signal).catch(() => 'left');
    await requestedAfter(seen, 1);
    leaving.abort();
    expect(await left).toBe('left');
    await eventually(() => h.ingress.inFlight() === 0, 5000);
    // all four places are free: four held at once are let in
    const held = Array.from({ length: MAX_IN_FLIGHT }, () => post('silent'));
    const events = await requestedAfter(seen + 1, MAX_IN_FLIGHT);
    for (const e of events) sendReply(h.bus.nc, e.data.ctx.replyTo, chatResult(e.requestId, answer('small', 1, 2, 'ok')));
    for (const res of await Promise.all(held)) expect(res.status).toBe(200);
    await eventually(() => h.ingress.inFlight() === 0, 5000);
  });
});

describe('the backlog bound', () => {
  // the router's durable with nobody consuming it: what it holds is the request path's backlog
  const stalled = Consumers.router;

  it('sheds every new request 503 with a Retry-After while the request path holds more than maxBacklog, and lets them in once it drained', async () => {
    await h.applyConfig(bounds(MAX_BACKLOG));
    await h.bus.jsm.consumers.add(Topology.stream.name, { durable_name: stalled.durable, filter_subject: stalled.filter, ack_policy: 'explicit' });
    for (let i = 0; i <= MAX_BACKLOG; i++) await h.bus.js.publish(Subjects.event('cache.missed', 'acme'), encodeJson({ i }));
    expect((await readBacklog(h.bus, Date.now())).pending).toBe(MAX_BACKLOG + 1);

    // the gate reads the backlog every 250 ms: the first request after that reading is shed
    const shed = await eventually(async () => {
      const res = await post('while backed up');
      return res.status === 503 ? res : false;
    }, 5000);
    // no invoker lane took anything: the drain rate is unknown, so 5 s
    expect(shed.headers.get('retry-after')).toBe('5');
    expectErrorShape(await shed.json(), 'service_busy');
    expect((await shedRejected()).data).toMatchObject({ status: 503, retryAfterMs: 5000 });
    // async requests too: a 202 would only move the wait into the stream
    expect((await post('later', { 'x-sluice-async': 'true' })).status).toBe(503);
    const byNats = await clientError(sluice.chat({ messages: [{ role: 'user', content: 'backed up by NATS' }] }));
    expect([byNats.code, byNats.retryAfterMs]).toEqual(['service_busy', 5000]);

    await h.bus.jsm.consumers.delete(Topology.stream.name, stalled.durable);
    const passed = await eventually(async () => {
      const res = await post('drained');
      return res.status === 200 ? res : false;
    }, 5000);
    expect(contentOf(await passed.json())).toBe('echo: drained');
    expect(contentOf((await sluice.chat({ messages: [{ role: 'user', content: 'drained by NATS' }] })).body)).toBe('echo: drained by NATS');
    await h.applyConfig(bounds(0));
  });

  it('reads the invoker lanes drain rate between two readings', async () => {
    const lane = invokerConsumer('standard');
    await h.bus.jsm.consumers.add(Topology.stream.name, { durable_name: lane.durable, filter_subject: lane.filter, ack_policy: 'explicit' });
    for (let i = 0; i < 10; i++) await h.bus.js.publish(Subjects.routed('standard', 'acme'), encodeJson({ i }));
    const first = await readBacklog(h.bus, 1000);
    expect(first).toMatchObject({ pending: 10, invokerDelivered: 0 });
    const consumer = await h.bus.js.consumers.get(Topology.stream.name, lane.durable);
    const batch = await consumer.fetch({ max_messages: 4, expires: 1000 });
    for await (const m of batch) m.ack();
    // four taken in the half second between the readings: 8 a second
    expect(await readBacklog(h.bus, 1500, first)).toMatchObject({ pending: 6, invokerDelivered: 4, drainPerSecond: 8 });
    await h.bus.jsm.consumers.delete(Topology.stream.name, lane.durable);
  });
});

describe('slow clients', () => {
  /** Opens a socket that sends a request's headers a byte every `gapMs`; resolves with what came back when the server closed it. */
  function slowLoris(gapMs: number): Promise<{ status: number }> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(h.ingress.port, '127.0.0.1');
      const text = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEYS.acme}\r\nx-slow: ${'z'.repeat(200)}\r\n`;
      let got = '';
      let i = 0;
      const timer = setInterval(() => socket.writable && i < text.length && socket.write(text[i++]!), gapMs);
      socket.on('data', (d) => (got += d.toString()));
      socket.on('error', (e) => {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ECONNRESET' && code !== 'EPIPE') reject(e);
      });
      socket.on('close', () => {
        clearInterval(timer);
        resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(got)?.[1] ?? 0) });
      });
    });
  }

  it('cuts clients trickling headers slower than headersTimeoutMs with 408, holding no place meanwhile: others are served', async () => {
    // more trickling clients than places: were any of them holding one, the requests below would be shed
    const loris = Array.from({ length: MAX_IN_FLIGHT * 3 }, () => slowLoris(50));
    for (let i = 0; i < 5; i++) {
      const res = await post(`served ${i}`);
      expect(res.status).toBe(200);
      expect(contentOf(await res.json())).toBe(`echo: served ${i}`);
    }
    expect((await Promise.all(loris)).map((r) => r.status)).toEqual(loris.map(() => 408));
    expect(h.ingress.inFlight()).toBe(0);
  });
});
