import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { eventually } from '@sluice/bus/testing';
import { hashKey } from '@sluice/contracts';
import { expectErrorShape } from '@sluice/contracts/testing';
import { ADMIN_KEY, DEV_KEY, defaultConfig, startE2eStack, type E2eStack } from './harness.js';

// Issue 11, item 5, on the whole stack: virtual keys made through the ledger's admin API, used
// through ingress with the openai SDK, applied live; read keys on the ledger; no conversation
// text on a timeline without ledger.storeContent.
const DEV_READ_KEY = 'sk-e2e-read-dev';
const OTHER_KEY = 'sk-e2e-other';
const OTHER_READ_KEY = 'sk-e2e-read-other';

let stack: E2eStack;
beforeAll(async () => {
  const config = defaultConfig();
  config.tenants = [
    { ...config.tenants[0], readKeySha256: [hashKey(DEV_READ_KEY)] },
    { id: 'other', keySha256: [hashKey(OTHER_KEY)], readKeySha256: [hashKey(OTHER_READ_KEY)] },
  ];
  stack = await startE2eStack({ config });
});
afterAll(async () => {
  await stack?.close();
});

/** A call to the ledger with any key (or none), its status and JSON body. */
async function ledgerCall(method: string, path: string, key: string | undefined, body?: unknown): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (key !== undefined) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${stack.ledgerUrl}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  return { status: res.status, body: await res.json() };
}
const asAdmin = (method: string, path: string, body?: unknown) => ledgerCall(method, path, ADMIN_KEY, body);

const ask = (content: string, model = 'gpt-4o-mini') => ({ model, messages: [{ role: 'user' as const, content }] });

/** The status and error code the SDK got, or 200. */
async function outcome(p: Promise<unknown>): Promise<{ status: number; code: unknown }> {
  try {
    await p;
    return { status: 200, code: null };
  } catch (e) {
    if (e instanceof OpenAI.APIError) return { status: e.status ?? 0, code: e.code };
    throw e;
  }
}

describe('virtual keys through the admin API and ingress', () => {
  let keyId: string;
  let key: string;
  let requestId: string;

  it('creates a key (shown once) and the openai SDK uses it at once, with its models and lane', async () => {
    const created = await asAdmin('POST', '/admin/v1/keys', { tenant: 'dev', name: 'e2e', models: ['gpt-4o-mini'], lane: 'batch', metadata: { owner: 'e2e' } });
    expect(created.status).toBe(201);
    ({ id: keyId, key } = created.body as { id: string; key: string });
    expect(key).toMatch(/^sk-sluice-[A-Za-z0-9]{43}$/);
    const { data, response } = await eventually(() => stack.openai(key).chat.completions.create(ask('PROMPT-MARKER-4711 say hi')).withResponse(), 5000);
    expect(data.choices[0]?.message.content?.length).toBeGreaterThan(0);
    requestId = response.headers.get('x-request-id')!;
    expect(await outcome(stack.openai(key).chat.completions.create(ask('hi', 'gpt-4o')))).toEqual({ status: 403, code: 'model_not_allowed' });
    expect((await stack.openai(key).models.list()).data.map((m) => m.id)).toEqual(['gpt-4o-mini', 'auto']);
  });

  it('lists the key without its secret or hash', async () => {
    const list = await asAdmin('GET', '/admin/v1/keys?tenant=dev');
    expect(list.status).toBe(200);
    expect(list.body.data).toEqual([expect.objectContaining({ id: keyId, name: 'e2e', status: 'active', lane: 'batch', metadata: { owner: 'e2e' } })]);
    expect(JSON.stringify(list.body)).not.toContain(key);
    expect(JSON.stringify(list.body)).not.toContain(hashKey(key));
  });

  it("puts the key on the request's timeline (the limiter's layer, the lane) and no prompt or answer text", async () => {
    await stack.ledgerCaughtUp();
    const report = await stack.ledger(`/v1/requests/${requestId}`);
    expect(report.tenant).toBe('dev');
    expect(report.priority).toBe('batch');
    expect(report.timeline[0].data.ctx.key).toEqual({ id: keyId });
    expect(report.content).toEqual({ shown: false, reason: expect.stringContaining('ledger.storeContent') });
    const text = JSON.stringify(report);
    expect(text).not.toContain('PROMPT-MARKER-4711');
    expect(text).not.toContain('"message"');
    expect(report.timeline.map((e: { type: string }) => e.type)).toContain('chat.completed');
  });

  it('rotates: the old key is refused at once (no grace: it is no key any more), the new one works', async () => {
    const rotated = await asAdmin('POST', `/admin/v1/keys/${keyId}/rotate`, {});
    expect(rotated.status).toBe(200);
    const next = rotated.body.key as string;
    expect(next).not.toBe(key);
    await eventually(
      async () => expect(await outcome(stack.openai(key).chat.completions.create(ask('old key')))).toEqual({ status: 401, code: 'invalid_api_key' }),
      5000,
    );
    expect((await stack.openai(next).chat.completions.create(ask('new key'))).choices.length).toBe(1);
    key = next;
  });

  it('revokes: refused within a second or two in ingress, and kept as revoked', async () => {
    const revokedAt = Date.now();
    expect((await asAdmin('DELETE', `/admin/v1/keys/${keyId}`)).body).toMatchObject({ id: keyId, status: 'revoked' });
    await eventually(
      async () => expect(await outcome(stack.openai(key).chat.completions.create(ask('revoked')))).toEqual({ status: 401, code: 'key_expired' }),
      2000,
      {
        everyMs: 20,
      },
    );
    const appliedMs = Date.now() - revokedAt;
    console.log(`revocation applied in ingress after ${appliedMs} ms (DELETE included)`);
    expect(appliedMs).toBeLessThan(2000);
    expect((await asAdmin('GET', `/admin/v1/keys/${keyId}`)).body.status).toBe('revoked');
    // the tenant's config key is untouched
    expect((await stack.openai(DEV_KEY).chat.completions.create(ask('config key'))).choices.length).toBe(1);
  });
});

describe('keys on the ledger', () => {
  it("gives a tenant's read key its own tenant only", async () => {
    const { data, response } = await stack.openai(OTHER_KEY).chat.completions.create(ask('from the other tenant')).withResponse();
    expect(data.choices.length).toBe(1);
    const otherRequest = response.headers.get('x-request-id')!;
    await stack.ledgerCaughtUp();
    const all = await stack.ledger('/v1/costs?groupBy=tenant');
    // the admin sees every tenant (and `_unknown`: requests refused before a key named one)
    expect(all.rows.map((r: { tenant: string }) => r.tenant)).toEqual(expect.arrayContaining(['dev', 'other']));
    const mine = await stack.ledger('/v1/costs?groupBy=tenant', DEV_READ_KEY);
    expect(mine.rows.map((r: { tenant: string }) => r.tenant)).toEqual(['dev']);
    const slo = await stack.ledger('/v1/slo?groupBy=tenant', OTHER_READ_KEY);
    expect(slo.rows.map((r: { tenant: string }) => r.tenant)).toEqual(['other']);
    const denied = await ledgerCall('GET', '/v1/costs?tenant=other', DEV_READ_KEY);
    expect(denied.status).toBe(403);
    expectErrorShape(denied.body, 'permission_denied');
    expect((await ledgerCall('GET', `/v1/requests/${otherRequest}`, OTHER_READ_KEY)).status).toBe(200);
    const hidden = await ledgerCall('GET', `/v1/requests/${otherRequest}`, DEV_READ_KEY);
    expect(hidden.status).toBe(404);
    expectErrorShape(hidden.body, 'not_found');
  });

  it('answers wrong and missing keys 401, and a read key on the admin API 403, with codes', async () => {
    const missing = await ledgerCall('GET', '/v1/costs', undefined);
    expect(missing.status).toBe(401);
    expectErrorShape(missing.body, 'missing_api_key');
    const wrong = await ledgerCall('GET', '/v1/costs', 'sk-not-a-key');
    expect(wrong.status).toBe(401);
    expectErrorShape(wrong.body, 'invalid_api_key');
    // a tenant's API key is for ingress, not the ledger
    expect((await ledgerCall('GET', '/v1/costs', DEV_KEY)).status).toBe(401);
    const admin = await ledgerCall('POST', '/admin/v1/keys', DEV_READ_KEY, { tenant: 'dev', name: 'nope' });
    expect(admin.status).toBe(403);
    expectErrorShape(admin.body, 'permission_denied');
    const noKey = await ledgerCall('GET', '/admin/v1/keys', undefined);
    expect(noKey.status).toBe(401);
    expect((await fetch(`${stack.ledgerUrl}/healthz`)).status).toBe(200);
  });
});
