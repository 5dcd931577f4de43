// Virtual keys in ingress: written to the real `sluice_keys` bucket as the admin API writes them,
// applied by the running front doors through their watch, at both doors.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { SluiceClient, SluiceRequestError } from '@sluice/client';
import { encodeJson } from '@sluice/bus';
import { eventually } from '@sluice/bus/testing';
import { hashKey, type VirtualKey } from '@sluice/contracts';
import { startHarness, type Harness, httpStatus } from './testing.js';

let h: Harness;
let nc: NatsConnection;

const KEY = 'sk-sluice-int-virtual-key-0123456789abcdef';
const record: VirtualKey = {
  id: 'key_intTestKey0000000001',
  tenant: 'acme',
  name: 'int test',
  sha256: hashKey(KEY),
  models: ['small'],
  limits: { requestsPerMinute: 7, tokensPerMinute: 7000 },
  createdAt: Date.now(),
};

beforeAll(async () => {
  h = await startHarness();
  nc = await connect({ servers: h.nats.url });
});
afterAll(async () => {
  await nc?.close();
  await h?.stop();
});

const openai = (key: string) => new OpenAI({ baseURL: h.baseURL, apiKey: key, maxRetries: 0 });
const ask = (model: string) => ({ model, messages: [{ role: 'user' as const, content: 'hi' }] });

describe('virtual keys from the sluice_keys bucket', () => {
  it('accepts a key put in the bucket while ingress runs, carries it on ctx.key, and narrows its models', async () => {
    expect(await httpStatus(openai(KEY).chat.completions.create(ask('small')))).toEqual({ status: 401, code: 'invalid_api_key' });
    await h.buckets.keys.put(record.id, encodeJson(record));
    const answer = await eventually(() => openai(KEY).chat.completions.create(ask('small')), 5000);
    const event = h.requested.find((e) => e.requestId === answer.id.replace(/^chatcmpl-/, ''))!;
    expect(event.tenant).toBe('acme');
    expect(event.data.ctx.key).toEqual({ id: record.id, limits: record.limits });
    expect(await httpStatus(openai(KEY).chat.completions.create(ask('large')))).toEqual({ status: 403, code: 'model_not_allowed' });
    expect((await openai(KEY).models.list()).data.map((m) => m.id)).toEqual(['small', 'auto']);
  });

  it('works at the NATS door for its own tenant only', async () => {
    const acme = new SluiceClient(nc, { tenant: 'acme', key: KEY, timeoutMs: 5000 });
    expect((await acme.chat({ model: 'small', messages: [{ role: 'user', content: 'hi' }] })).model).toBe('small');
    const beta = new SluiceClient(nc, { tenant: 'beta', key: KEY, timeoutMs: 5000 });
    const refused = await beta.chat({ messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(SluiceRequestError);
    expect((refused as SluiceRequestError).code).toBe('invalid_api_key');
  });

  it('refuses a revoked key with key_expired as soon as the bucket says so, and a deleted one as unknown', async () => {
    await h.buckets.keys.put(record.id, encodeJson({ ...record, revokedAt: Date.now() }));
    await eventually(
      async () => expect(await httpStatus(openai(KEY).chat.completions.create(ask('small')))).toEqual({ status: 401, code: 'key_expired' }),
      5000,
    );
    await h.buckets.keys.delete(record.id);
    await eventually(
      async () => expect(await httpStatus(openai(KEY).chat.completions.create(ask('small')))).toEqual({ status: 401, code: 'invalid_api_key' }),
      5000,
    );
  });

  it('skips a record that is not a virtual key, and keeps serving the others', async () => {
    await h.buckets.keys.put('key_broken000000000000', encodeJson({ id: 'key_broken000000000000', tenant: 'acme', sha256: 'nope' }));
    await h.buckets.keys.put(record.id, encodeJson(record));
    await eventually(() => openai(KEY).chat.completions.create(ask('small')), 5000);
  });
});
