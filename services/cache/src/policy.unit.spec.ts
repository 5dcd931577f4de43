import { describe, expect, it } from 'vitest';
import { parseConfig } from '@sluice/contracts';
import { minimalConfig } from '@sluice/bus/testing';
import { policyFor, semanticThreshold, ttlFor } from './policy.js';

const config = parseConfig({
  ...minimalConfig([
    { id: 'plain', keySha256: ['a'.repeat(64)] },
    { id: 'tuned', keySha256: ['b'.repeat(64)], cache: { ttlSeconds: 120, semantic: { enabled: true, threshold: 0.85 }, policy: { toolCalls: 'skip' } } },
    { id: 'off', keySha256: ['c'.repeat(64)], cache: { semantic: { enabled: false, threshold: 0.7 } } },
  ]),
  models: {
    m1: { deployments: ['d1'], fallback: [], price: { inputPerMTok: 1, outputPerMTok: 1 } },
    'text-embedding-3-small': { deployments: ['d1'], fallback: [], price: { inputPerMTok: 0.02, outputPerMTok: 0 } },
  },
});

describe('the tenant cache settings', () => {
  it('given a tenant with its own policy, then its choices override the defaults one by one', () => {
    expect(policyFor(config, 'plain')).toEqual({ length: 'skip', toolCalls: 'store', multipleChoices: 'store' });
    expect(policyFor(config, 'tuned')).toEqual({ length: 'skip', toolCalls: 'skip', multipleChoices: 'store' });
  });

  it('takes the shortest of the request, tenant and bucket TTLs', () => {
    expect(ttlFor(config, 'plain', {}, 3600)).toBe(3600);
    expect(ttlFor(config, 'tuned', {}, 3600)).toBe(120);
    expect(ttlFor(config, 'tuned', { cacheTtlSeconds: 30 }, 3600)).toBe(30);
    expect(ttlFor(config, 'plain', { cacheTtlSeconds: 99_999 }, 3600)).toBe(3600);
    expect(ttlFor(config, 'unknown', { cacheTtlSeconds: 5 }, 3600)).toBe(5);
  });

  it('gives a threshold only to tenants that opted in: theirs, else the default', () => {
    expect(semanticThreshold(config, 'tuned')).toBe(0.85);
    expect(semanticThreshold(config, 'off')).toBeUndefined();
    expect(semanticThreshold(config, 'plain')).toBeUndefined();
    const withDefault = { ...config, tenants: [{ ...config.tenants[0]!, cache: { semantic: { enabled: true } } }] };
    expect(semanticThreshold(withDefault, 'plain')).toBe(config.cache.semantic.threshold);
  });
});
