import { connect, headers as natsHeaders, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SluiceClient } from '@sluice/client';
import { Headers, parseReply, Subjects, Topology, type ChatErrorReply } from '@sluice/contracts';
import { contentOf } from '@sluice/contracts/testing';
import { clientError, KEYS, startHarness, type Harness } from './testing.js';

// The NATS door's reply subject check (reply-subject.ts, docs/nats-security.md): the terminal stage
// publishes the answer on the request's reply subject with rights a tenant does not have, so
// ingress takes only the asking tenant's inbox (and `_INBOX.` when NATS runs without users).

const encoder = new TextEncoder();
const body = (content: string) => encoder.encode(JSON.stringify({ messages: [{ role: 'user', content }] }));

/** Publishes a request for `tenant` asking for the answer on `reply` (a client may name any subject). */
function requestWithReply(nc: NatsConnection, tenant: 'acme' | 'beta', reply: string, content: string) {
  const h = natsHeaders();
  h.set(Headers.tenantKey, KEYS[tenant]);
  nc.publish(Subjects.chat(tenant), body(content), { reply, headers: h });
}

/** Every message `nc` hears on `subject` from now on. */
function hear(nc: NatsConnection, subject: string): Msg[] {
  const heard: Msg[] = [];
  nc.subscribe(subject, { callback: (_, msg) => void heard.push(msg) });
  return heard;
}

/**
 * A request refused with its refusal answered on `custom.mark.<n>` (a subject the door refuses in
 * either mode but may answer on). Sent after the requests before it on the same connection,
 * ingress handles it after them and answers it on its one connection after anything it sent
 * for them: once its answer is here, theirs would be too.
 */
let marks = 0;
async function marker(nc: NatsConnection): Promise<ChatErrorReply> {
  const reply = `custom.mark.${++marks}`;
  const sub = nc.subscribe(reply, { max: 1 });
  await nc.flush();
  requestWithReply(nc, 'acme', reply, 'marker');
  for await (const msg of sub) return parseReply(msg.data) as ChatErrorReply;
  throw new Error('no refusal on the marker subject');
}

/** The sequence of acme's last chat.rejected in the stream (0: none yet). */
async function lastRejectedSeq(h: Harness): Promise<number> {
  const msg = await h.bus.jsm.streams.getMessage(Topology.stream.name, { last_by_subj: Subjects.event('chat.rejected', 'acme') }).catch(() => null);
  return msg?.seq ?? 0;
}

/** Waits for an `invalid_reply_subject` chat.rejected of acme after stream sequence `after`. */
async function refusedAfter(h: Harness, after: number) {
  for (let i = 0; i < 500; i++) {
    if ((await lastRejectedSeq(h)) > after) {
      const event = await h.lastRejected('acme');
      if (event.data.code === 'invalid_reply_subject') return event;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('no chat.rejected invalid_reply_subject for acme');
}

describe('NATS without users (the default): tenant inbox or _INBOX', () => {
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

  it("answers on the tenant's own inbox and on the default _INBOX", async () => {
    const own = await connect({ servers: h.nats.url, inboxPrefix: Subjects.inbox('acme') });
    try {
      const viaOwn = await new SluiceClient(own, { tenant: 'acme', key: KEYS.acme, timeoutMs: 5000, inboxPrefix: Subjects.inbox('acme') }).chat({
        messages: [{ role: 'user', content: 'own inbox' }],
      });
      expect(contentOf(viaOwn.body)).toBe('echo: own inbox');
      expect(h.requested.find((e) => e.requestId === viaOwn.requestId)!.data.ctx.replyTo).toMatch(/^sluice\.inbox\.acme\./);
    } finally {
      await own.close();
    }
    const viaDefault = await new SluiceClient(nc, { tenant: 'acme', key: KEYS.acme, timeoutMs: 5000 }).chat({
      messages: [{ role: 'user', content: 'default' }],
    });
    expect(contentOf(viaDefault.body)).toBe('echo: default');
  });

  it("refuses a reply on another tenant's inbox: nothing reaches it, the refusal is an event", async () => {
    const stolen = hear(nc, 'sluice.inbox.beta.>');
    await nc.flush();
    const after = await lastRejectedSeq(h);
    requestWithReply(nc, 'acme', 'sluice.inbox.beta.x1', 'steal an inbox');
    const event = await refusedAfter(h, after);
    expect(event.data).toMatchObject({ code: 'invalid_reply_subject', status: 400, stage: 'ingress' });
    // the refused subject is not kept as one to answer on
    expect(event.data.replyTo).toBeUndefined();
    expect((await marker(nc)).error.code).toBe('invalid_reply_subject');
    expect(stolen).toEqual([]);
  });

  it('refuses a reply inside sluice.evt: nothing is published there and nothing reaches the stream', async () => {
    const forged = Subjects.event('chat.completed', 'acme');
    const heard = hear(nc, 'sluice.evt.chat.completed.>');
    await nc.flush();
    const after = await lastRejectedSeq(h);
    requestWithReply(nc, 'acme', forged, 'forge an event');
    requestWithReply(nc, 'acme', `${forged}.lane`, 'forge an event');
    await refusedAfter(h, after);
    await marker(nc);
    expect(heard).toEqual([]);
    const stored = await h.bus.jsm.streams.getMessage(Topology.stream.name, { last_by_subj: 'sluice.evt.chat.completed.>' }).catch(() => null);
    expect(stored ?? null).toBeNull();
    expect(h.requested.some((e) => JSON.stringify(e.data.body).includes('forge an event'))).toBe(false);
  });

  it('answers a refused subject outside sluice.* and $* with the coded error, so the client learns why', async () => {
    const reply = await marker(nc);
    expect(reply.error).toMatchObject({ code: 'invalid_reply_subject', status: 400 });
    expect(reply.error.message).toContain('sluice.inbox.acme');
  });
});

describe('NATS with Sluice users (SLUICE_NATS_USERS=1): the tenant inbox only', () => {
  let h: Harness;
  let nc: NatsConnection;
  beforeAll(async () => {
    h = await startHarness({ env: { SLUICE_NATS_USERS: '1' } });
    nc = await connect({ servers: h.nats.url });
  });
  afterAll(async () => {
    await nc?.close();
    await h?.stop();
  });

  it("answers on the tenant's own inbox, whole and streamed (SluiceClient takes the connection's inbox prefix)", async () => {
    const own = await connect({ servers: h.nats.url, inboxPrefix: Subjects.inbox('beta') });
    try {
      const beta = new SluiceClient(own, { tenant: 'beta', key: KEYS.beta, timeoutMs: 5000 });
      expect(contentOf((await beta.chat({ model: 'small', messages: [{ role: 'user', content: 'whole' }] })).body)).toBe('echo: whole');
      const it = beta.stream({ model: 'small', messages: [{ role: 'user', content: 'streamed' }] });
      let chunks = 0;
      let last = await it.next();
      for (; !last.done; last = await it.next()) chunks++;
      expect(chunks).toBeGreaterThan(0);
    } finally {
      await own.close();
    }
  });

  it('refuses the default _INBOX with invalid_reply_subject, naming the prefix to use', async () => {
    const err = await clientError(
      new SluiceClient(nc, { tenant: 'acme', key: KEYS.acme, timeoutMs: 5000 }).chat({ messages: [{ role: 'user', content: 'hi' }] }),
    );
    expect(err).toMatchObject({ code: 'invalid_reply_subject', status: 400 });
    expect(err.message).toContain('inboxPrefix "sluice.inbox.acme"');
    expect((await h.lastRejected('acme')).data.code).toBe('invalid_reply_subject');
  });

  it("still refuses another tenant's inbox and event subjects, unanswered", async () => {
    const heard = [hear(nc, 'sluice.inbox.beta.>'), hear(nc, 'sluice.evt.chat.completed.>')];
    await nc.flush();
    const after = await lastRejectedSeq(h);
    requestWithReply(nc, 'acme', 'sluice.inbox.beta.x2', 'steal with users');
    requestWithReply(nc, 'acme', Subjects.event('chat.completed', 'acme'), 'forge with users');
    await refusedAfter(h, after);
    await marker(nc);
    expect(heard).toEqual([[], []]);
  });
});
