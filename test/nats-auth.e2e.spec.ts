import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type OpenAI from 'openai';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { SluiceClient } from '@sluice/client';
import { eventually } from '@sluice/bus/testing';
import { contentOf } from '@sluice/contracts/testing';
import { appUser, tenantInboxPrefix, type AuthNats } from '@sluice/scripts/stack';
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

  it('needed no right beyond those it was given', async () => {
    await stack.ledgerCaughtUp();
    await stack.consumersDrained();
    const denied = serverLog()
      .split('\n')
      .filter((l) => /(Publish|Subscription) Violation/.test(l));
    expect(denied.join('\n')).toBe('');
  });
});
