import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, interpolateEnv, parseConfig } from './config.js';

const minimal = () => ({
  tenants: [{ id: 'acme', keySha256: ['a'.repeat(64)] }],
  limits: {
    global: { requestsPerMinute: 10, tokensPerMinute: 1000 },
    tenantDefault: { requestsPerMinute: 10, tokensPerMinute: 1000 },
    userDefault: { requestsPerMinute: 10, tokensPerMinute: 1000 },
  },
  deployments: { d1: { baseUrl: 'http://127.0.0.1:1/v1' } },
  models: { m1: { deployments: ['d1'], price: { inputPerMTok: 1, outputPerMTok: 2 } } },
  tiers: [{ name: 'small', model: 'm1', maxComplexity: 1 }],
  router: {},
  invoker: {},
  cache: {},
  degrader: {},
  ingress: {},
});

describe('parseConfig', () => {
  it('fills defaults, also inside deployments and models', () => {
    const c = parseConfig(minimal());
    expect(c.deployments.d1?.timeoutMs).toBe(30_000);
    expect(c.models.m1?.fallback).toEqual([]);
    expect(c.invoker.maxAttemptsPerDeployment).toBe(3);
    expect(c.ingress.maxBodyBytes).toBe(1_048_576);
  });

  it('names the wrong key', () => {
    const bad = minimal();
    (bad.limits.global as { requestsPerMinute: unknown }).requestsPerMinute = 'lots';
    expect(() => parseConfig(bad)).toThrow(/config\.limits\.global\.requestsPerMinute/);
  });

  it('rejects references to models and deployments that do not exist', () => {
    const bad = minimal();
    bad.models.m1.deployments = ['nope'];
    bad.tiers[0]!.model = 'ghost';
    const err = (() => {
      try {
        parseConfig(bad);
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(err?.message).toMatch(/unknown deployment nope/);
    expect(err?.message).toMatch(/unknown model ghost/);
  });

  it('refuses a key that is not a SHA-256 hex digest', () => {
    const bad = minimal();
    bad.tenants[0]!.keySha256 = ['sk-plaintext-key'];
    expect(() => parseConfig(bad)).toThrow(/keySha256/);
  });
});

describe('interpolateEnv', () => {
  it('fills ${NAME} and ${NAME:-default}, and fails loudly on a missing variable', () => {
    expect(interpolateEnv({ a: '${X}/v1', b: ['${Y:-fallback}'] }, { X: 'http://h' })).toEqual({ a: 'http://h/v1', b: ['fallback'] });
    expect(() => interpolateEnv('${MISSING}', {})).toThrow(/MISSING/);
  });
});

/** The message parseConfig refuses `config` with; fails the test when it is accepted. */
function refusal(config: unknown): string {
  try {
    parseConfig(config);
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  throw new Error('expected the config to be refused');
}

/** `minimal()` with every section of issue 11 filled in, valid as it stands. */
const full = (): Record<string, any> => {
  const c: Record<string, any> = minimal();
  c.tenants[0].budgets = [{ id: 'daily', scope: 'tenant', window: 'daily', limitUsd: 5, timeZone: 'Europe/Paris' }];
  c.tenants[0].ledger = { storeContent: true };
  c.ingress = { http: { requestTimeoutMs: 1000 } };
  c.admin = { keySha256: ['b'.repeat(64)] };
  c.alerts = { webhooks: [{ id: 'ops', url: 'http://127.0.0.1:9/hook', secretEnv: 'HOOK_SECRET', tenants: ['acme'] }], retry: { initialDelayMs: 100 } };
  c.lanes = { batch: { share: 0.3, maxConcurrency: 4 }, features: { nightly: 'batch' } };
  c.tokenBudgets = [{ id: 'summaries', feature: 'summarize', maxInputTokens: 1000, maxOutputTokens: 200, model: 'm1' }];
  return c;
};

describe('parseConfig: unknown keys (issue 11, item 7)', () => {
  it('accepts every section filled in', () => {
    const c = parseConfig(full());
    expect(c.tokenBudgets[0]?.id).toBe('summaries');
    expect(c.alerts.thresholds).toEqual([0.5, 0.75, 0.9, 1]);
    expect(c.alerts.retry.maxDelayMs).toBe(300_000);
  });

  // each: where an invented key is put, and the path the refusal must name
  const places: Array<[string, (c: Record<string, any>) => void, string]> = [
    ['the top level', (c) => (c.budgets = { acme: 10 }), 'config.budgets'],
    ['a tenant', (c) => (c.tenants[0].budget = 10), 'config.tenants.0.budget'],
    ['a tenant budget', (c) => (c.tenants[0].budgets[0].limit = 10), 'config.tenants.0.budgets.0.limit'],
    ["a tenant's ledger", (c) => (c.tenants[0].ledger.storeContents = true), 'config.tenants.0.ledger.storeContents'],
    ['limits.global', (c) => (c.limits.global.burst = 5), 'config.limits.global.burst'],
    ['a model', (c) => (c.models.m1.context = 8000), 'config.models.m1.context'],
    ["a model's price", (c) => (c.models.m1.price.cachedPerMTok = 1), 'config.models.m1.price.cachedPerMTok'],
    ['a deployment', (c) => (c.deployments.d1.apiKey = 'sk-secret'), 'config.deployments.d1.apiKey'],
    ['a tier', (c) => (c.tiers[0].maxTokens = 1), 'config.tiers.0.maxTokens'],
    ['ingress', (c) => (c.ingress.maxBody = 1), 'config.ingress.maxBody'],
    ['ingress.http', (c) => (c.ingress.http.timeoutMs = 1), 'config.ingress.http.timeoutMs'],
    ['admin', (c) => (c.admin.keys = ['sk-admin']), 'config.admin.keys'],
    ['alerts', (c) => (c.alerts.threshold = [0.5]), 'config.alerts.threshold'],
    ['a webhook', (c) => (c.alerts.webhooks[0].secret = 'plain'), 'config.alerts.webhooks.0.secret'],
    ['alerts.retry', (c) => (c.alerts.retry.attempts = 3), 'config.alerts.retry.attempts'],
    ['lanes', (c) => (c.lanes.interactive = { share: 0.1 }), 'config.lanes.interactive'],
    ['a lane', (c) => (c.lanes.batch.weight = 2), 'config.lanes.batch.weight'],
    ['a token budget', (c) => (c.tokenBudgets[0].maxTokens = 10), 'config.tokenBudgets.0.maxTokens'],
  ];
  it.each(places)('refuses an unknown key in %s, naming its path', (_, invent, path) => {
    const c = full();
    invent(c);
    expect(refusal(c)).toBe(`${path}: Unexpected property`);
  });

  it('names a wrong value deep down by its path', () => {
    const c = full();
    c.lanes.features.nightly = 'urgent';
    expect(refusal(c)).toMatch(/^config\.lanes\.features\.nightly: /);
    const d = full();
    d.tokenBudgets[0].onOverflow = 'truncate';
    expect(refusal(d)).toMatch(/^config\.tokenBudgets\.0\.onOverflow: /);
  });
});

describe('parseConfig: cross-checks of issue 11', () => {
  const cases: Array<[string, (c: Record<string, any>) => void, string]> = [
    [
      'a budget id twice in a tenant',
      (c) => c.tenants[0].budgets.push({ id: 'daily', scope: 'user', window: 'monthly', limitUsd: 1 }),
      'config.tenants.0.budgets.1.id: budget daily appears twice',
    ],
    [
      'a time zone that does not exist',
      (c) => (c.tenants[0].budgets[0].timeZone = 'Mars/Olympus'),
      'config.tenants.0.budgets.0.timeZone: unknown time zone Mars/Olympus',
    ],
    [
      'a tenant budget with a match',
      (c) => (c.tenants[0].budgets[0].match = 'bob'),
      'config.tenants.0.budgets.0.match: a tenant budget matches no user, feature or key',
    ],
    [
      'lane shares over 1 (with the defaults of the lanes left out)',
      (c) => (c.lanes.critical = { share: 0.5 }),
      "config.lanes: the lanes' shares add up to 1.40, more than 1",
    ],
    ['a token budget naming an unknown model', (c) => (c.tokenBudgets[0].model = 'gpt-9'), 'config.tokenBudgets.0.model: unknown model gpt-9'],
    [
      'a token budget id twice',
      (c) => c.tokenBudgets.push({ id: 'summaries', maxOutputTokens: 1 }),
      'config.tokenBudgets.1.id: token budget summaries appears twice',
    ],
    ['a token budget naming an unknown tenant', (c) => (c.tokenBudgets[0].tenant = 'ghost'), 'config.tokenBudgets.0.tenant: unknown tenant ghost'],
    ['a token budget naming a key that is no key id', (c) => (c.tokenBudgets[0].key = 'sk-live-123'), 'config.tokenBudgets.0.key: sk-live-123 is not a key id'],
    [
      'onOverflow without maxInputTokens',
      (c) => (c.tokenBudgets[0] = { id: 'x', onOverflow: 'refuse' }),
      'config.tokenBudgets.0.onOverflow: needs maxInputTokens',
    ],
    ['a webhook naming an unknown tenant', (c) => c.alerts.webhooks[0].tenants.push('ghost'), 'config.alerts.webhooks.0.tenants: unknown tenant ghost'],
  ];
  it.each(cases)('refuses %s', (_, spoil, message) => {
    const c = full();
    spoil(c);
    expect(refusal(c)).toContain(message);
  });

  it('names every problem at once', () => {
    const c = full();
    c.tokenBudgets[0].model = 'gpt-9';
    c.alerts.webhooks[0].tenants = ['ghost'];
    c.tenants[0].budgets[0].timeZone = 'Nowhere/Land';
    const message = refusal(c);
    expect(message.split('; ')).toHaveLength(3);
  });
});

describe('the shipped config', () => {
  it('parses, with its token budget rule', () => {
    const raw = JSON.parse(readFileSync(new URL('../../../config/sluice.json', import.meta.url), 'utf8'));
    const config = parseConfig(
      interpolateEnv(raw, { SLUICE_DEV_KEY_SHA256: 'c'.repeat(64), SLUICE_ADMIN_KEY_SHA256: 'd'.repeat(64), SLUICE_UPSTREAM_URL: 'http://127.0.0.1:8090/v1' }),
    );
    expect(config.tokenBudgets.length).toBeGreaterThan(0);
  });
});
