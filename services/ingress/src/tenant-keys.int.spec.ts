// Tenant key hashes kept apart from the config (issue 16, item 1): `putConfig` writes them to
// `sluice_tenant_keys`, which only ingress and the ledger may read, and the config every service
// reads from `sluice_control` carries none; ingress checks keys against them, followed live.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { putConfig } from '@sluice/bus';
import { eventually } from '@sluice/bus/testing';
import { ControlKeys, hashKey, type SluiceConfig } from '@sluice/contracts';
import { KEYS, startHarness, type Harness, httpStatus } from './testing.js';

let h: Harness;
let fixture: SluiceConfig;

beforeAll(async () => {
  h = await startHarness();
  fixture = structuredClone(h.ctx.control.config());
});
afterAll(async () => {
  await h?.stop();
});

const ask = (key: string) =>
  new OpenAI({ baseURL: h.baseURL, apiKey: key, maxRetries: 0 }).chat.completions.create({ model: 'small', messages: [{ role: 'user', content: 'hi' }] });

const storedConfig = async () => (await h.buckets.control.get(ControlKeys.config))!.string();

describe('tenant key hashes apart from the config', () => {
  it('the config in sluice_control carries no key hash; ingress still takes the tenant key and refuses a wrong one', async () => {
    const stored = await storedConfig();
    for (const key of Object.values(KEYS)) expect(stored).not.toContain(hashKey(key));
    expect((JSON.parse(stored) as SluiceConfig).tenants.every((t) => t.keySha256 === undefined)).toBe(true);
    expect(await httpStatus(ask(KEYS.acme))).toEqual({ status: 200, code: null });
    expect(await httpStatus(ask('sk-acme-wrong'))).toEqual({ status: 401, code: 'invalid_api_key' });
  });

  it('a key rotated by writing the config applies live: the new key is taken, the old refused', async () => {
    const rotated = 'sk-acme-rotated-int';
    const next = structuredClone(fixture);
    next.tenants.find((t) => t.id === 'acme')!.keySha256 = [hashKey(rotated)];
    await putConfig(h.buckets, next);
    await eventually(() => ask(rotated), 5000);
    expect(await httpStatus(ask(KEYS.acme))).toEqual({ status: 401, code: 'invalid_api_key' });
    expect(await storedConfig()).not.toContain(hashKey(rotated));
  });
});
