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
