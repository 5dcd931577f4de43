import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { createInbox, headers as natsHeaders } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { Subjects, Topology, type ChatErrorReply, type SluiceEvent } from '@sluice/contracts';
import { eventually } from '@sluice/bus/testing';
import { DEV_KEY, startE2eStack, type E2eStack } from './harness.js';

// Bad input through both front doors: a coded error with the right status, and a chat.rejected
// event for each. Runs on the embedded defaults (PGlite) to cover that path too.
let stack: E2eStack;
beforeAll(async () => {
  stack = await startE2eStack();
});
afterAll(async () => {
  await stack?.close();
});

const url = () => `${stack.ingressUrl}/v1/chat/completions`;
const post = (body: string, headers: Record<string, string> = { authorization: `Bearer ${DEV_KEY}` }) =>
  fetch(url(), { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

async function rejectedCodes(): Promise<string[]> {
  const js = jetstream(stack.nc);
  const consumer = await js.consumers.get(Topology.stream.name, { filter_subjects: Subjects.eventsOf('chat.rejected') });
  const codes: string[] = [];
  const info = await consumer.info();
  let pending = info.num_pending;
  while (pending > 0) {
    const m = await consumer.next({ expires: 2000 });
    if (!m) break;
    codes.push(m.json<SluiceEvent<'chat.rejected'>>().data.code);
    pending = m.info.pending;
  }
  return codes;
}

const cases: Array<{ name: string; body: string; headers?: Record<string, string>; status: number; code: string }> = [
  { name: 'invalid JSON', body: '{"messages": [', status: 400, code: 'invalid_json' },
  { name: 'no messages', body: JSON.stringify({ model: 'gpt-4o-mini' }), status: 400, code: 'invalid_request' },
  { name: 'empty messages', body: JSON.stringify({ model: 'gpt-4o-mini', messages: [] }), status: 400, code: 'invalid_request' },
  { name: 'wrong types', body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 42 }] }), status: 400, code: 'invalid_request' },
  { name: 'bad role', body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'wizard', content: 'x' }] }), status: 400, code: 'invalid_request' },
  {
    name: 'temperature out of range',
    body: JSON.stringify({ model: 'gpt-4o-mini', temperature: 7, messages: [{ role: 'user', content: 'x' }] }),
    status: 400,
    code: 'invalid_request',
  },
  {
    name: 'oversized body',
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x'.repeat(1_100_000) }] }),
    status: 413,
    code: 'body_too_large',
  },
  { name: 'missing key', body: JSON.stringify({ messages: [{ role: 'user', content: 'x' }] }), headers: {}, status: 401, code: 'missing_api_key' },
  {
    name: 'wrong key',
    body: JSON.stringify({ messages: [{ role: 'user', content: 'x' }] }),
    headers: { authorization: 'Bearer sk-nope' },
    status: 401,
    code: 'invalid_api_key',
  },
  { name: 'unknown model', body: JSON.stringify({ model: 'gpt-9-ultra', messages: [{ role: 'user', content: 'x' }] }), status: 404, code: 'model_not_found' },
];

describe('HTTP rejections', () => {
  for (const c of cases) {
    it(`${c.name} → ${c.status} ${c.code}`, async () => {
      const res = await post(c.body, c.headers);
      expect(res.status).toBe(c.status);
      const body = (await res.json()) as { error: { code: string; message: string; type: string } };
      expect(body.error.code).toBe(c.code);
      expect(body.error.message.length).toBeGreaterThan(5);
      expect(typeof body.error.type).toBe('string');
    });
  }

  it('surfaces as the openai SDK error classes', async () => {
    const bad = stack.openai('sk-nope');
    await expect(bad.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(
      OpenAI.AuthenticationError,
    );
    await expect(stack.openai().chat.completions.create({ model: 'gpt-9-ultra', messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(
      OpenAI.NotFoundError,
    );
  });
});

describe('NATS rejections', () => {
  const request = async (body: string, key: string, tenant: string) => {
    const h = natsHeaders();
    if (key !== '') h.set('sluice-key', key);
    // answered on the addressed tenant's inbox, the one reply subject the NATS door takes on a stack with NATS users
    const reply = await stack.nc.request(Subjects.chat(tenant), new TextEncoder().encode(body), {
      headers: h,
      timeout: 10_000,
      noMux: true,
      reply: createInbox(Subjects.inbox(tenant)),
    });
    return reply.json<ChatErrorReply>();
  };
  it.each([
    ['invalid JSON', '{nope', DEV_KEY, 'dev', 'invalid_json', 400],
    ['no messages', '{}', DEV_KEY, 'dev', 'invalid_request', 400],
    ['wrong types', JSON.stringify({ messages: 'hello' }), DEV_KEY, 'dev', 'invalid_request', 400],
    ['missing key', JSON.stringify({ messages: [{ role: 'user', content: 'x' }] }), '', 'dev', 'missing_api_key', 401],
    ['key of another tenant', JSON.stringify({ messages: [{ role: 'user', content: 'x' }] }), DEV_KEY, 'other', 'invalid_api_key', 401],
    ['unknown model', JSON.stringify({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }), DEV_KEY, 'dev', 'model_not_found', 404],
  ] as const)('%s → %s', async (_name, body, key, tenant, code, status) => {
    const reply = await request(body, key, tenant);
    expect(reply.error.code).toBe(code);
    expect(reply.error.status).toBe(status);
  });
});

describe('every rejection is an event', () => {
  it('put one chat.rejected in the stream per refused request, with its code', async () => {
    const codes = await eventually(async () => {
      const got = await rejectedCodes();
      if (got.length < cases.length + 6) throw new Error(`only ${got.length} rejections so far`);
      return got;
    }, 20_000);
    for (const c of cases) expect(codes).toContain(c.code);
    expect(codes.filter((c) => c === 'invalid_api_key').length).toBeGreaterThanOrEqual(3);
    // the ledger sees them too
    await stack.ledgerCaughtUp();
    const costs = await stack.ledger('/v1/costs?groupBy=tenant');
    const total = costs.rows.reduce((s: number, r: any) => s + r.requests, 0);
    expect(total).toBeGreaterThanOrEqual(codes.length);
  });
});
