import { describe, expect, it } from 'vitest';
import { EventData, hashKey, KEY_ID_PATTERN, schemaProblem, type VirtualKey } from '@sluice/contracts';
import { checkCreate, createdKey, keyEvent, keyView, newKeyId, newSecret, revokedKey, rotatedKey } from './admin-keys.js';
import { readersConfig } from './auth-fixtures.js';
import { BadParam } from './params.js';

const config = readersConfig({ beta: { models: ['m1'] } });
const NOW = Date.UTC(2026, 10, 30, 12);

function param(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof BadParam) return e.param;
    throw e;
  }
  return 'accepted';
}

describe('new keys and ids', () => {
  it('are sk-sluice- and 43 base62 characters, and key_ and 20, each different', () => {
    const secrets = new Set(Array.from({ length: 200 }, newSecret));
    expect(secrets.size).toBe(200);
    for (const s of secrets) expect(s).toMatch(/^sk-sluice-[A-Za-z0-9]{43}$/);
    for (let i = 0; i < 50; i++) expect(newKeyId()).toMatch(KEY_ID_PATTERN);
  });
});

describe('checkCreate', () => {
  it('given a full request, then it is accepted and written without the key', () => {
    const req = checkCreate(
      {
        tenant: 'acme',
        name: 'ci',
        models: ['m1', 'm1'],
        limits: { requestsPerMinute: 10, tokensPerMinute: 1000 },
        budget: { window: 'daily', limitUsd: 5, timeZone: 'Europe/Paris' },
        lane: 'batch',
        expiresAt: '2027-01-01T00:00:00Z',
        metadata: { team: 'search' },
      },
      config,
    );
    const key = createdKey(req, { id: 'key_aaaaaaaaaaaaaaaaaaaa', secret: 'sk-sluice-x' }, NOW);
    expect(key).toMatchObject({
      tenant: 'acme',
      models: ['m1'],
      lane: 'batch',
      expiresAt: Date.UTC(2027, 0, 1),
      sha256: hashKey('sk-sluice-x'),
      createdAt: NOW,
    });
    expect(JSON.stringify(key)).not.toContain('sk-sluice-x');
  });

  it.each([
    [{ name: 'x' }, 'tenant'],
    [{ tenant: 'acme' }, 'name'],
    [{ tenant: 'acme', name: 'x', colour: 'red' }, 'colour'],
    [{ tenant: 'acme', name: 'x', limits: { requestsPerMinute: '10', tokensPerMinute: 1 } }, 'limits.requestsPerMinute'],
    [{ tenant: 'acme', name: 'x', budget: { window: 'weekly', limitUsd: 1 } }, 'budget.window'],
    [{ tenant: 'acme', name: 'x', budget: { window: 'daily', limitUsd: 1, timeZone: 'Mars/Olympus' } }, 'budget.timeZone'],
    [{ tenant: 'acme', name: 'x', lane: 'urgent' }, 'lane'],
    [{ tenant: 'acme', name: '' }, 'name'],
    [{ tenant: 'nobody', name: 'x' }, 'tenant'],
    [{ tenant: 'acme', name: 'x', models: ['gpt-5'] }, 'models.0'],
    [{ tenant: 'beta', name: 'x', models: ['m1', 'other'] }, 'models.1'],
    [[], 'body'],
    ['text', 'body'],
  ])('given %j, then invalid_request naming %s', (body, expected) => {
    expect(param(() => checkCreate(body, config))).toBe(expected);
  });

  it("given a webhook, then it must be one of alerts.webhooks that takes the key's tenant", () => {
    const withHooks = {
      ...config,
      alerts: {
        ...config.alerts,
        webhooks: [
          { id: 'ops', url: 'https://hooks.example.com/ops', secretEnv: 'OPS_SECRET' },
          { id: 'beta-only', url: 'https://hooks.example.com/beta', secretEnv: 'BETA_SECRET', tenants: ['beta'] },
        ],
      },
    };
    const req = checkCreate({ tenant: 'acme', name: 'x', webhook: 'ops' }, withHooks);
    const key = createdKey(req, { id: 'key_aaaaaaaaaaaaaaaaaaaa', secret: 'sk-sluice-x' }, NOW);
    expect(key.webhook).toBe('ops');
    expect(keyView(key, NOW).webhook).toBe('ops');
    expect(param(() => checkCreate({ tenant: 'acme', name: 'x', webhook: 'beta-only' }, withHooks))).toBe('webhook');
    expect(param(() => checkCreate({ tenant: 'acme', name: 'x', webhook: 'nope' }, withHooks))).toBe('webhook');
    expect(param(() => checkCreate({ tenant: 'beta', name: 'x', webhook: 'beta-only' }, withHooks))).toBe('accepted');
  });

  it('given an expiry in the past or not a date, then expiresAt', () => {
    const at = (expiresAt: unknown) => () =>
      createdKey(checkCreate({ tenant: 'acme', name: 'x', expiresAt }, config), { id: 'key_aaaaaaaaaaaaaaaaaaaa', secret: 's' }, NOW);
    expect(param(at(NOW - 1))).toBe('expiresAt');
    expect(param(at('tomorrow'))).toBe('expiresAt');
    expect(param(at('2020-01-01T00:00:00Z'))).toBe('expiresAt');
    expect(param(at(NOW + 1))).toBe('accepted');
  });
});

describe('rotation and revocation', () => {
  const key: VirtualKey = { id: 'key_aaaaaaaaaaaaaaaaaaaa', tenant: 'acme', name: 'ci', sha256: hashKey('sk-old'), createdAt: NOW - 1000 };

  it('given a grace period, then the old hash is kept until it ends; without, it is gone', () => {
    const graced = rotatedKey(key, 'sk-new', 60, NOW);
    expect(graced).toMatchObject({ sha256: hashKey('sk-new'), previousSha256: hashKey('sk-old'), previousExpiresAt: NOW + 60_000, rotatedAt: NOW });
    const sharp = rotatedKey(graced, 'sk-newer', 0, NOW + 1);
    expect(sharp.previousSha256).toBeUndefined();
    expect(sharp.previousExpiresAt).toBeUndefined();
    expect(keyView(graced, NOW).previousValidUntil).toBe(NOW + 60_000);
    expect(keyView(graced, NOW + 60_000).previousValidUntil).toBeNull();
  });

  it('given a revoked key, then rotating is refused and revoking again keeps the first time', () => {
    const revoked = revokedKey(rotatedKey(key, 'sk-new', 60, NOW), NOW + 5);
    expect(revoked.revokedAt).toBe(NOW + 5);
    expect(revoked.previousSha256).toBeUndefined();
    expect(revokedKey(revoked, NOW + 10)).toBe(revoked);
    expect(param(() => rotatedKey(revoked, 'sk-x', 0, NOW + 10))).toBe('id');
    expect(keyView(revoked, NOW + 10).status).toBe('revoked');
  });

  it('shows no hash, and says when a key has expired', () => {
    const view = keyView({ ...key, previousSha256: hashKey('p'), previousExpiresAt: NOW + 1, expiresAt: NOW }, NOW);
    expect(JSON.stringify(view)).not.toMatch(/[0-9a-f]{64}/);
    expect(view).toMatchObject({ object: 'key', status: 'expired', models: null, metadata: {} });
  });

  it('publishes events that fit their schema, carry no secret, and differ per change', () => {
    const created = keyEvent('key.created', key, NOW);
    const rotated = keyEvent('key.rotated', rotatedKey(key, 'sk-new', 60, NOW + 1), NOW + 1);
    const revoked = keyEvent('key.revoked', revokedKey(key, NOW + 2), NOW + 2);
    for (const e of [created, rotated, revoked]) {
      expect(schemaProblem(EventData[e.type], e.data)).toBeUndefined();
      expect(e).toMatchObject({ tenant: 'acme', requestId: '', service: 'ledger' });
      expect(JSON.stringify(e)).not.toMatch(/[0-9a-f]{64}|sk-/);
    }
    expect(new Set([created.id, rotated.id, revoked.id]).size).toBe(3);
    // two rotations in one millisecond are two events
    const again = rotatedKey(key, 'sk-newer', 0, NOW + 1);
    expect(keyEvent('key.rotated', again, NOW + 1, 'a').id).not.toBe(keyEvent('key.rotated', again, NOW + 1, 'b').id);
    expect(rotated.data).toEqual({ keyId: key.id, name: 'ci', previousValidUntil: NOW + 1 + 60_000 });
  });
});
