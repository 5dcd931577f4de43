// GET /v1/sluice/requests/{id}/result and SluiceClient.result against a real nats-server: what a
// terminal stage publishes on a result subject (sendReply with the tenant) is what a fetch answers,
// for that tenant only, and what a waiting NATS client receives.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendReply } from '@sluice/bus';
import { eventually } from '@sluice/bus/testing';
import { SluiceClient, SluiceHeldError, SluiceRequestError } from '@sluice/client';
import { Subjects, type ChatReply } from '@sluice/contracts';
import { KEYS, startHarness, type Harness } from './testing.js';
import { newRequestId } from './ids.js';

let h: Harness;
let nc: NatsConnection;

beforeAll(async () => {
  h = await startHarness();
  nc = await connect({ servers: h.nats.url });
});
afterAll(async () => {
  await nc?.close();
  await h?.stop();
});

const fetchResult = async (id: string, key: string = KEYS.acme) => {
  const res = await fetch(`${h.baseURL}/sluice/requests/${id}/result`, { headers: { authorization: `Bearer ${key}` } });
  return { status: res.status, headers: res.headers, body: (await res.json()) as any };
};

/** Publishes `reply` on the request's result subject as a terminal stage does, and waits until a fetch sees it. */
async function store(requestId: string, reply: ChatReply, tenant = 'acme') {
  sendReply(h.bus.nc, Subjects.result(requestId), reply, { tenant });
  await eventually(async () => expect((await fetchResult(requestId, tenant === 'acme' ? KEYS.acme : KEYS.beta)).status).not.toBe(404), 3_000);
}

const completion = (requestId: string) => ({
  requestId,
  model: 'm1',
  body: {
    id: `chatcmpl-${requestId}`,
    object: 'chat.completion',
    choices: [{ index: 0, message: { role: 'assistant', content: 'later' }, finish_reason: 'stop' }],
  },
  usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
  cached: false,
  created: 1,
});

describe('the result route', () => {
  it('answers a stored answer as the request would have: the body whole, with Sluice headers', async () => {
    const id = newRequestId();
    await store(id, completion(id));
    const got = await fetchResult(id);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(completion(id).body);
    expect(got.headers.get('x-sluice-model')).toBe('m1');
    expect(got.headers.get('x-sluice-cache')).toBe('miss');
  });

  it('answers a held request 202 with where its answer will be, and then the answer that replaced it', async () => {
    const id = newRequestId();
    await store(id, { requestId: id, status: 'held', resultSubject: Subjects.result(id), at: 1_764_000_000_000 });
    const held = await fetchResult(id);
    expect(held.status).toBe(202);
    expect(held.headers.get('location')).toBe(`/v1/sluice/requests/${id}/result`);
    expect(held.body).toEqual({
      id,
      object: 'sluice.request',
      status: 'held',
      created_at: 1_764_000_000,
      result_url: `/v1/sluice/requests/${id}/result`,
      result_subject: Subjects.result(id),
    });
    sendReply(h.bus.nc, Subjects.result(id), completion(id), { tenant: 'acme' });
    await eventually(async () => expect((await fetchResult(id)).status).toBe(200), 3_000);
  });

  it('answers a stored error with its status, code and Retry-After', async () => {
    const id = newRequestId();
    await store(id, { requestId: id, error: { code: 'upstream_failed', message: 'Every upstream deployment failed.', status: 502, retryAfterMs: 2000 } });
    const got = await fetchResult(id);
    expect(got.status).toBe(502);
    expect(got.headers.get('retry-after')).toBe('2');
    expect(got.body.error).toMatchObject({ code: 'upstream_failed' });
  });

  it('refuses ids that are unknown, malformed or another tenant’s alike: 404 result_not_found, never a 5xx', async () => {
    const theirs = newRequestId();
    await store(theirs, completion(theirs), 'beta');
    for (const id of [newRequestId(), theirs, 'req_short', 'not-an-id', 'req_' + 'A'.repeat(20), '%2E%2E', 'req_aaaaaaaaaaaaaaaaaaaa.x']) {
      const got = await fetchResult(encodeURIComponent(id));
      expect(got.status, id).toBe(404);
      expect(got.body.error).toMatchObject({ code: 'result_not_found', param: 'id' });
    }
    expect((await fetchResult(theirs, 'sk-wrong')).status).toBe(401);
  });
});

describe('SluiceClient.result', () => {
  it('reads a stored answer, waits for one still held, and says when there is none', async () => {
    const client = new SluiceClient(nc, { tenant: 'acme', key: KEYS.acme, timeoutMs: 5000 });
    const done = newRequestId();
    await store(done, completion(done));
    expect((await client.result(done)).body).toEqual(completion(done).body);

    const later = newRequestId();
    await store(later, { requestId: later, status: 'held', resultSubject: Subjects.result(later), at: Date.now() });
    await expect(client.result(later)).rejects.toBeInstanceOf(SluiceHeldError);
    const waiting = client.result(later, { waitMs: 5_000 });
    setTimeout(() => sendReply(h.bus.nc, Subjects.result(later), completion(later), { tenant: 'acme' }), 200);
    expect((await waiting).cache).toBe('miss');

    const none = await client.result(newRequestId()).catch((e: unknown) => e);
    expect(none).toBeInstanceOf(SluiceRequestError);
    expect(none).toMatchObject({ code: 'result_not_found', status: 404 });
    // another tenant's answer is not this client's
    const beta = newRequestId();
    await store(beta, completion(beta), 'beta');
    await expect(client.result(beta)).rejects.toMatchObject({ code: 'result_not_found' });
  });
});

describe('async requests', () => {
  const ask = (content: string) => ({ model: 'auto', messages: [{ role: 'user', content }] });
  const postAsync = (body: unknown, headers: Record<string, string> = { 'x-sluice-async': 'true' }) =>
    fetch(`${h.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEYS.acme}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });

  it('HTTP: 202 queued at once, the request goes with its result subject as reply-to, and the answer is fetched later', async () => {
    const res = await postAsync(ask('async over http'));
    expect(res.status).toBe(202);
    const queued = (await res.json()) as { id: string; status: string; result_url: string };
    expect(queued).toMatchObject({ object: 'sluice.request', status: 'queued', result_subject: Subjects.result(queued.id) });
    expect(res.headers.get('location')).toBe(queued.result_url);
    await eventually(() => expect(h.requested.some((e) => e.requestId === queued.id)).toBe(true), 3_000);
    expect(h.requested.find((e) => e.requestId === queued.id)!.data.ctx.replyTo).toBe(Subjects.result(queued.id));
    await eventually(async () => {
      const got = await fetchResult(queued.id);
      expect(got.status).toBe(200);
      expect(got.body).toMatchObject({ object: 'chat.completion' });
    }, 5_000);
  });

  it('NATS: submit is answered queued, result waits for the answer', async () => {
    const client = new SluiceClient(nc, { tenant: 'acme', key: KEYS.acme, timeoutMs: 5000 });
    const { requestId, resultSubject } = await client.submit(ask('async over nats'));
    expect(resultSubject).toBe(Subjects.result(requestId));
    const result = await client.result(requestId, { waitMs: 5_000 });
    expect(result.body).toMatchObject({ object: 'chat.completion' });
  });

  it('refuses a bad x-sluice-async and an async stream with 400 naming the field, publishing nothing', async () => {
    const before = h.requested.length;
    const bad = await postAsync(ask('x'), { 'x-sluice-async': 'yes please' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).error).toMatchObject({ code: 'invalid_request', param: 'x-sluice-async' });
    const streamed = await postAsync({ ...ask('x'), stream: true });
    expect(streamed.status).toBe(400);
    expect(((await streamed.json()) as any).error).toMatchObject({ code: 'invalid_request', param: 'stream' });
    const off = await postAsync(ask('async off'), { 'x-sluice-async': 'FALSE' });
    expect(off.status).toBe(200);
    await new Promise((r) => setTimeout(r, 200));
    expect(h.requested.length).toBe(before + 1);
  });
});
