import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type OpenAI from 'openai';
import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { SluiceClient } from '@sluice/client';
import { eventually } from '@sluice/bus/testing';
import { Headers, parseReply, Subjects, Topology, type ChatErrorReply, type SluiceEvent } from '@sluice/contracts';
import { contentOf } from '@sluice/contracts/testing';
import { appUser, OPERATOR_USER, tenantInboxPrefix, type AuthNats } from '@sluice/scripts/stack';
import { DEV_KEY, startE2eStack, type E2eStack } from './harness.js';

// The whole stack with Sluice's NATS users (docs/nats-security.md): every service on its own
// user with only its own rights, the application on tenant dev's user and inbox prefix. Each
// service doing its part (and the ledger recording it) shows the rights are enough; the server's
// log without a single "Publish Violation" or "Subscription Violation" shows none was needed beyond them.
let stack: E2eStack;
let app: NatsConnection;
beforeAll(async () => {
  stack = await startE2eStack({ natsAuth: true, postgres: true });
  const user = appUser('dev');
  app = await connect({ servers: stack.natsUrl, user, pass: stack.natsPasswords![user]!, inboxPrefix: tenantInboxPrefix('dev') });
});
afterAll(async () => {
  await app?.close();
  await stack?.close();
});

/** Every event in the stream on `subject`, oldest first (an ordered consumer of the operator's). */
async function eventsOn(subject: string): Promise<SluiceEvent[]> {
  const consumer = await stack.bus.js.consumers.get(Topology.stream.name, { filter_subjects: subject });
  const events: SluiceEvent[] = [];
  let pending = (await consumer.info()).num_pending;
  while (pending > 0) {
    const m = await consumer.next({ expires: 2000 });
    if (!m) break;
    events.push(m.json<SluiceEvent>());
    pending = m.info.pending;
  }
  return events;
}

const rejected = async (tenant: string) => (await eventsOn(Subjects.event('chat.rejected', tenant))) as Array<SluiceEvent<'chat.rejected'>>;

const ask = (content: string) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content }] });
const serverLog = () => readFileSync((stack.nats as AuthNats).logPath, 'utf8');

/** The ledger's row of a request once it has an outcome. */
const outcomeOf = (id: string) =>
  eventually(async () => {
    const r = await stack.ledger(`/v1/requests/${id}`);
    if (!r.outcome || r.outcome === 'pending') throw new Error(`${id}: no outcome yet`);
    return r;
  }, 20_000);

describe('a stack whose services each have only their own NATS rights', () => {
  it('refuses a connection without credentials', async () => {
    await expect(connect({ servers: stack.natsUrl, reconnect: false })).rejects.toThrow(/authorization/i);
  });

  it('answers through the HTTP door, whole and streamed, and the ledger records both', async () => {
    const { data, response } = await stack.openai().chat.completions.create(ask('Least privilege, whole')).withResponse();
    expect(data.choices[0]?.message.content?.length).toBeGreaterThan(0);
    const stream = await stack.openai().chat.completions.create({ ...ask('Least privilege, streamed'), stream: true });
    let content = '';
    let id: string | undefined;
    for await (const chunk of stream as AsyncIterable<OpenAI.ChatCompletionChunk>) {
      content += chunk.choices[0]?.delta.content ?? '';
      id ??= chunk.id.replace(/^chatcmpl-/, '');
    }
    expect(content.length).toBeGreaterThan(0);
    expect((await outcomeOf(response.headers.get('x-sluice-request-id')!)).outcome).toBe('completed');
    expect((await outcomeOf(id!)).outcome).toBe('completed');
  });

  it("answers the tenant's application on its own inbox, whole, streamed and from the cache", async () => {
    const client = new SluiceClient(app, { tenant: 'dev', key: DEV_KEY, inboxPrefix: tenantInboxPrefix('dev') });
    const whole = await client.chat(ask('Hello over a locked-down NATS'));
    expect(contentOf(whole.body)!.length).toBeGreaterThan(0);
    const it = client.stream(ask('Stream over a locked-down NATS'));
    let chunks = 0;
    let last = await it.next();
    for (; !last.done; last = await it.next()) chunks++;
    expect(chunks).toBeGreaterThan(1);
    const again = await client.chat(ask('Hello over a locked-down NATS'));
    expect(again.cached).toBe(true);
    expect((await outcomeOf(whole.requestId)).outcome).toBe('completed');
    expect((await outcomeOf(last.value.requestId)).outcome).toBe('completed');
  });

  it("answers only on the asking tenant's inbox: a reply subject inside sluice.evt or another tenant's inbox is refused and nothing is forged", async () => {
    // NATS checks no reply subject: app-dev may ask for its answer anywhere, and the stage that
    // ends a request may publish events and answer every tenant (a refusal sent to the stream
    // delete would also show as ingress's Publish Violation in the last test)
    const forged = Subjects.event('chat.completed', 'dev');
    const rejectedBefore = await rejected('dev');
    const h = natsHeaders();
    h.set(Headers.tenantKey, DEV_KEY);
    const body = new TextEncoder().encode(JSON.stringify(ask('answer me somewhere else')));
    for (const reply of [forged, 'sluice.inbox.other.x', `$JS.API.STREAM.DELETE.${Topology.stream.name}`])
      app.publish(Subjects.chat('dev'), body, { reply, headers: h });
    await eventually(async () => expect((await rejected('dev')).length).toBe(rejectedBefore.length + 3), 20_000);
    expect((await rejected('dev')).slice(-3).map((e) => e.data.code)).toEqual(Array(3).fill('invalid_reply_subject'));
    // a whole request after them, answered: had ingress answered the refused ones, it would have done so before
    expect(contentOf((await new SluiceClient(app, { tenant: 'dev', key: DEV_KEY }).chat(ask('after the refusals'))).body)!.length).toBeGreaterThan(0);
    const completed = await eventsOn(forged);
    expect(completed.length).toBeGreaterThan(0);
    expect(completed.filter((e) => e.type !== 'chat.completed')).toEqual([]);
  });

  it('takes no default _INBOX on a stack with users: ingress runs with SLUICE_NATS_USERS=1', async () => {
    // the operator may listen anywhere, so it hears the refusal
    const op = await connect({ servers: stack.natsUrl, user: OPERATOR_USER, pass: stack.natsPasswords![OPERATOR_USER]! });
    try {
      const h = natsHeaders();
      h.set(Headers.tenantKey, DEV_KEY);
      const msg = await op.request(Subjects.chat('dev'), new TextEncoder().encode(JSON.stringify(ask('on _INBOX'))), { headers: h, timeout: 10_000 });
      expect(msg.subject).toMatch(/^_INBOX\./);
      expect((parseReply(msg.data) as ChatErrorReply).error).toMatchObject({ code: 'invalid_reply_subject', status: 400 });
    } finally {
      await op.close();
    }
  });

  it('needed no right beyond those it was given', async () => {
    await stack.ledgerCaughtUp();
    await stack.consumersDrained();
    const denied = serverLog()
      .split('\n')
      .filter((l) => /(Publish|Subscription) Violation/.test(l));
    expect(denied.join('\n')).toBe('');
  });
});
