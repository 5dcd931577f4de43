// Idempotency-Key against a real nats-server: a request whose client left runs on and its answer
// is stored; a retry with the same key and body gets that answer (same request id, nothing
// published again); another body is refused 422; an answer a retry may mend (429) is not replayed.
// The test plays the terminal stage with the bus's own sendReply and result mark.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resultMark, sendReply } from '@sluice/bus';
import { SluiceClient } from '@sluice/client';
import { chatChunksOf, Subjects, type AnyEvent, type ChatReply } from '@sluice/contracts';
import { answer as upstreamAnswer, chatResult } from '@sluice/contracts/testing';
import { KEYS, startHarness, type Harness } from './testing.js';

let h: Harness;
let nc: NatsConnection;
const cancels: string[] = [];

beforeAll(async () => {
  h = await startHarness();
  nc = await connect({ servers: h.nats.url });
  h.bus.nc.subscribe(Subjects.cancelAll, { callback: (_e, m) => void cancels.push(m.subject.slice(Subjects.cancel('').length)) });
});
afterAll(async () => {
  await nc?.close();
  await h?.stop();
});

const chatUrl = () => `${h.baseURL}/chat/completions`;
const headers = (key?: string) => ({
  authorization: `Bearer ${KEYS.acme}`,
  'content-type': 'application/json',
  ...(key !== undefined ? { 'idempotency-key': key } : {}),
});
/** A body the fake stage leaves unanswered: the test answers it. */
const silent = (extra: Record<string, unknown> = {}) => JSON.stringify({ messages: [{ role: 'user', content: 'silent' }], ...extra });
const post = (key: string | undefined, body: string, signal?: AbortSignal) =>
  fetch(chatUrl(), { method: 'POST', headers: headers(key), body, ...(signal ? { signal } : {}) });

/** The chat.requested the stage gets next after `seen` of them. */
async function nextRequested(seen: number): Promise<AnyEvent & { type: 'chat.requested' }> {
  for (let i = 0; h.requested.length <= seen; i++) {
    if (i > 500) throw new Error('the request never reached the stream');
    await new Promise((r) => setTimeout(r, 10));
  }
  return h.requested[seen]!;
}

/** Answers a request as a terminal stage does: to its reply-to, marked with its tenant and keep. */
function answer(event: AnyEvent & { type: 'chat.requested' }, reply: ChatReply) {
  sendReply(h.bus.nc, event.data.ctx.replyTo, reply, resultMark(event.tenant, event.data.ctx));
}

const completion = (requestId: string, content: string) => chatResult(requestId, upstreamAnswer('small', 4, 3, content));

describe('Idempotency-Key over HTTP', () => {
  it('keeps running a request whose client left, and answers the retry with its answer, once', async () => {
    const key = `drop-${Date.now()}`;
    const seen = h.requested.length;
    const abort = new AbortController();
    const first = post(key, silent(), abort.signal).catch((e: unknown) => e);
    const event = await nextRequested(seen);
    expect(event.data.ctx.keepResult).toBe(true);
    abort.abort();
    expect(await first).toBeInstanceOf(Error);
    // the client is gone; the stage answers later, and nothing was cancelled
    await new Promise((r) => setTimeout(r, 200));
    expect(cancels).not.toContain(event.requestId);
    answer(event, completion(event.requestId, 'kept for you'));

    const retry = await post(key, silent());
    expect(retry.status).toBe(200);
    expect(retry.headers.get('x-request-id')).toBe(event.requestId);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(((await retry.json()) as any).choices[0].message.content).toBe('kept for you');
    // nothing published again
    expect(h.requested.length).toBe(seen + 1);
    // and by its id
    const fetched = await fetch(`${h.baseURL}/sluice/requests/${event.requestId}/result`, { headers: headers() });
    expect(fetched.status).toBe(200);
    expect(((await fetched.json()) as any).choices[0].message.content).toBe('kept for you');
  });

  it('cancels a request without a key whose client left, as before', async () => {
    const seen = h.requested.length;
    const abort = new AbortController();
    const first = post(undefined, silent(), abort.signal).catch((e: unknown) => e);
    const event = await nextRequested(seen);
    expect(event.data.ctx.keepResult).toBeUndefined();
    abort.abort();
    await first;
    for (let i = 0; !cancels.includes(event.requestId); i++) {
      if (i > 300) throw new Error('no cancel published');
      await new Promise((r) => setTimeout(r, 10));
    }
  });

  it('has a retry that comes while the first still runs wait for its answer', async () => {
    const key = `wait-${Date.now()}`;
    const seen = h.requested.length;
    const first = post(key, silent());
    const event = await nextRequested(seen);
    const retry = post(key, silent());
    await new Promise((r) => setTimeout(r, 150));
    answer(event, completion(event.requestId, 'one answer'));
    const [a, b] = await Promise.all([first, retry]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(b.headers.get('x-request-id')).toBe(event.requestId);
    expect(((await a.json()) as any).choices[0].message.content).toBe('one answer');
    expect(((await b.json()) as any).choices[0].message.content).toBe('one answer');
    expect(h.requested.length).toBe(seen + 1);
  });

  it('replays a streamed answer as a stream', async () => {
    const key = `stream-${Date.now()}`;
    const seen = h.requested.length;
    const abort = new AbortController();
    const first = post(key, silent({ stream: true }), abort.signal).catch((e: unknown) => e);
    const event = await nextRequested(seen);
    const whole = completion(event.requestId, 'streamed then kept');
    const [chunk] = chatChunksOf(whole.body, event.requestId, true);
    answer(event, { requestId: event.requestId, model: 'small', chunk });
    abort.abort();
    await first;
    answer(event, whole);

    const retry = await post(key, silent({ stream: true }));
    expect(retry.status).toBe(200);
    expect(retry.headers.get('content-type')).toContain('text/event-stream');
    expect(retry.headers.get('x-request-id')).toBe(event.requestId);
    const events = (await retry.text()).split('\n\n').filter(Boolean);
    expect(events.at(-1)).toBe('data: [DONE]');
    const content = events
      .slice(0, -1)
      .map((e) => JSON.parse(e.slice('data: '.length)).choices[0]?.delta.content ?? '')
      .join('');
    expect(content).toBe('streamed then kept');
    expect(h.requested.length).toBe(seen + 1);
  });

  it('runs the request again when the first answer was an error a retry may mend', async () => {
    const key = `mend-${Date.now()}`;
    const seen = h.requested.length;
    const first = post(key, silent());
    const event = await nextRequested(seen);
    answer(event, { requestId: event.requestId, error: { code: 'rate_limit_exceeded', message: 'slow down', status: 429, retryAfterMs: 100 } });
    expect((await first).status).toBe(429);

    const retry = post(key, silent());
    const again = await nextRequested(seen + 1);
    expect(again.requestId).not.toBe(event.requestId);
    answer(again, completion(again.requestId, 'second time lucky'));
    const res = await retry;
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe(again.requestId);
    expect(res.headers.get('idempotent-replayed')).toBeNull();
    // and a third try gets the second's answer
    const third = await post(key, silent());
    expect(third.headers.get('x-request-id')).toBe(again.requestId);
    expect(((await third.json()) as any).choices[0].message.content).toBe('second time lucky');
  });

  it('refuses the same key with another body 422 idempotency_key_reused, and bad keys 400', async () => {
    const key = `reuse-${Date.now()}`;
    const seen = h.requested.length;
    const first = post(key, silent());
    const event = await nextRequested(seen);
    answer(event, completion(event.requestId, 'first'));
    expect((await first).status).toBe(200);

    const other = await post(key, JSON.stringify({ messages: [{ role: 'user', content: 'something else' }] }));
    expect(other.status).toBe(422);
    expect(((await other.json()) as any).error).toMatchObject({ code: 'idempotency_key_reused', param: 'idempotency-key' });
    expect((await h.lastRejected('acme')).data.code).toBe('idempotency_key_reused');

    for (const bad of ['k'.repeat(256), 'tab\there', 'caf\u00e9']) {
      const res = await post(bad, silent());
      expect([bad.length, res.status]).toEqual([bad.length, 400]);
      expect(((await res.json()) as any).error).toMatchObject({ code: 'invalid_request', param: 'idempotency-key' });
    }
    expect(h.requested.length).toBe(seen + 1);
  });
});

describe('sluice-idempotency-key over NATS', () => {
  it('answers a repeat with the first answer under the first request id, publishing nothing again', async () => {
    const client = new SluiceClient(nc, { tenant: 'acme', key: KEYS.acme });
    const key = `nats-${Date.now()}`;
    const seen = h.requested.length;
    const first = await client.chat({ messages: [{ role: 'user', content: 'hello over nats' }] }, { idempotencyKey: key });
    const again = await client.chat({ messages: [{ role: 'user', content: 'hello over nats' }] }, { idempotencyKey: key });
    expect(again.requestId).toBe(first.requestId);
    expect(again.body).toEqual(first.body);
    expect(h.requested.length).toBe(seen + 1);
  });
});
