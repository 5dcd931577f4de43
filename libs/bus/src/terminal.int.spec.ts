import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEvent, Topology, type ChatReply } from '@sluice/contracts';
import { answer, chatResult, completed, requestContext, requested } from '@sluice/contracts/testing';
import { carryOut } from './decided.js';
import { pastDeadline } from './deadline.js';
import { publishEvent } from './publish.js';
import { minimalConfig, startTestBus, type TestBus } from './testing.js';

const config = minimalConfig([{ id: 'acme' }]);

describe('one terminal event per request (contracts msgIdOf) against a real nats-server', () => {
  let env: TestBus;
  beforeAll(async () => {
    env = await startTestBus(config, { name: 'terminal' });
  });
  afterAll(async () => {
    await env?.stop();
  });

  /** Every reply sent to `inbox` from now on. */
  function repliesOn(inbox: string) {
    const replies: ChatReply[] = [];
    const sub = env.bus.nc.subscribe(inbox, { callback: (_e, m) => void replies.push(m.json<ChatReply>()) });
    return { replies, sub };
  }

  /** The events of a request in the stream, by type, in stream order. */
  async function typesInStream(requestId: string): Promise<string[]> {
    const info = await env.bus.jsm.streams.info(Topology.stream.name);
    const types: string[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await env.bus.jsm.streams.getMessage(Topology.stream.name, { seq }).catch(() => null);
      const e = m ? parseEvent(m.data) : undefined;
      if (e?.requestId === requestId) types.push(e.type);
    }
    return types;
  }

  it('keeps the first terminal event of a request and drops a later one of another type with its reply', async () => {
    const inbox = '_INBOX.terminal-test';
    const { replies, sub } = repliesOn(inbox);
    try {
      const ctx = { ...requestContext(), replyTo: inbox, deadline: Date.now() - 1 };
      await publishEvent(env.bus.js, requested('ends-once', 'acme', { ctx }));
      const done = completed('ends-once', 'acme', { ctx });
      // the invoker's answer: published, then replied
      await carryOut(env.bus, { events: [done], replies: [{ to: inbox, reply: chatResult('ends-once', answer()) }] });
      // a stage redelivered the request past its deadline and ends it too
      const expired = pastDeadline(requested('ends-once', 'acme', { ctx }), 'limiter', Date.now())!;
      const ack = await publishEvent(env.bus.js, expired.event);
      expect(ack).toMatchObject({ duplicate: true, endedAs: 'chat.completed' });
      await carryOut(env.bus, { events: [expired.event], replies: [{ to: expired.replyTo, reply: expired.reply }] });
      await env.bus.nc.flush();
      expect(await typesInStream('ends-once')).toEqual(['chat.requested', 'chat.completed']);
      // the client heard only the answer it was first given
      expect(replies.map((r) => ('error' in r ? 'error' : 'answer'))).toEqual(['answer']);
    } finally {
      sub.unsubscribe();
    }
  });

  it('treats a repeat of the same terminal event (a redelivery of its own stage) as its own: the reply still goes', async () => {
    const inbox = '_INBOX.terminal-repeat';
    const { replies, sub } = repliesOn(inbox);
    try {
      const ctx = { ...requestContext(), replyTo: inbox, deadline: Date.now() - 1 };
      const expired = pastDeadline(requested('ends-twice', 'acme', { ctx }), 'router', Date.now())!;
      expect((await publishEvent(env.bus.js, expired.event)).duplicate).toBe(false);
      const again = await publishEvent(env.bus.js, expired.event);
      expect(again.duplicate).toBe(true);
      expect(again.endedAs).toBeUndefined();
      await carryOut(env.bus, { events: [expired.event], replies: [{ to: expired.replyTo, reply: expired.reply }] });
      await env.bus.nc.flush();
      expect(await typesInStream('ends-twice')).toEqual(['chat.failed']);
      expect(replies).toHaveLength(1);
    } finally {
      sub.unsubscribe();
    }
  });

  it('leaves the other events of a request alone: each type has its own msg id', async () => {
    const ctx = requestContext();
    const first = await publishEvent(env.bus.js, requested('own-ids', 'acme', { ctx }));
    const done = await publishEvent(env.bus.js, completed('own-ids', 'acme', { ctx }));
    expect([first.duplicate, done.duplicate]).toEqual([false, false]);
    expect(await typesInStream('own-ids')).toEqual(['chat.requested', 'chat.completed']);
  });
});
