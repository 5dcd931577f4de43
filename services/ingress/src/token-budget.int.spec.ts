// Token budgets naming a virtual key, at both doors of a running ingress: the key comes from the
// real `sluice_keys` bucket, the rule from a live config change.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { SluiceClient } from '@sluice/client';
import { encodeJson } from '@sluice/bus';
import { eventually } from '@sluice/bus/testing';
import { hashKey, type VirtualKey } from '@sluice/contracts';
import { KEYS, startHarness, type Harness } from './testing.js';

let h: Harness;
let nc: NatsConnection;

const KEY = 'sk-sluice-int-token-budget-key-0123456789';
const record: VirtualKey = { id: 'key_tokenBudget000000001', tenant: 'acme', name: 'capped', sha256: hashKey(KEY), createdAt: Date.now() };
/** A key that may name only `large`, under a rule that sends its requests to `small`. */
const LARGE_ONLY = 'sk-sluice-int-token-budget-large-only-0123';
const largeOnly: VirtualKey = {
  id: 'key_tokenBudget000000002',
  tenant: 'acme',
  name: 'large only',
  sha256: hashKey(LARGE_ONLY),
  models: ['large'],
  createdAt: Date.now(),
};

beforeAll(async () => {
  h = await startHarness();
  nc = await connect({ servers: h.nats.url });
  await h.applyConfig((c) => ({
    ...c,
    tokenBudgets: [
      { id: 'capped-key', key: record.id, maxOutputTokens: 64, model: 'small' },
      { id: 'to-small', key: largeOnly.id, model: 'small' },
    ],
  }));
  await h.buckets.keys.put(record.id, encodeJson(record));
  await h.buckets.keys.put(largeOnly.id, encodeJson(largeOnly));
});
afterAll(async () => {
  await nc?.close();
  await h?.stop();
});

const ask = { model: 'large', messages: [{ role: 'user' as const, content: 'hi' }], max_completion_tokens: 1000 };
const requestedFor = (id: string) => h.requested.find((e) => e.requestId === id.replace(/^chatcmpl-/, ''))!;

describe('a token budget naming a virtual key', () => {
  it('applies to that key at the HTTP door, and says so in chat.requested', async () => {
    const answer = await eventually(() => new OpenAI({ baseURL: h.baseURL, apiKey: KEY, maxRetries: 0 }).chat.completions.create(ask), 5000);
    const event = requestedFor(answer.id);
    expect(event.data.ctx.key?.id).toBe(record.id);
    expect(event.data.body).toEqual({ ...ask, model: 'small', max_completion_tokens: 64 });
    expect(event.data.ctx.request.model).toBe('small');
    expect(event.data.ctx.request.maxOutputTokens).toBe(64);
    expect(event.reason).toMatch(/; token budget capped-key: max_completion_tokens 1000 -> 64; model large -> small$/);
  });

  it('applies at the NATS door too', async () => {
    const result = await new SluiceClient(nc, { tenant: 'acme', key: KEY, timeoutMs: 5000 }).chat(ask);
    const event = requestedFor(result.requestId);
    expect(event.data.body).toMatchObject({ model: 'small', max_completion_tokens: 64 });
  });

  it("leaves the same tenant's requests with its config key as sent", async () => {
    const answer = await new OpenAI({ baseURL: h.baseURL, apiKey: KEYS.acme, maxRetries: 0 }).chat.completions.create(ask);
    const event = requestedFor(answer.id);
    expect(event.data.ctx.key).toBeUndefined();
    expect(event.data.body).toEqual(ask);
    expect(event.reason).not.toContain('token budget');
  });

  it("checks a key's models against the model the client named, not the one the rule set", async () => {
    const client = new OpenAI({ baseURL: h.baseURL, apiKey: LARGE_ONLY, maxRetries: 0 });
    const answer = await eventually(() => client.chat.completions.create(ask), 5000);
    expect(requestedFor(answer.id).data.body).toMatchObject({ model: 'small' });
    const refused = await client.chat.completions.create({ ...ask, model: 'small' }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.APIError);
    expect((refused as InstanceType<typeof OpenAI.APIError>).code).toBe('model_not_allowed');
  });
});
