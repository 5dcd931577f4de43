import { parseConfig, type SluiceConfig } from '@sluice/contracts';

/** A valid config for the degrader's specs: two deployments and the degrader knobs given. */
export function testConfig(degrader: Partial<SluiceConfig['degrader']> = {}): SluiceConfig {
  return parseConfig({
    tenants: [{ id: 'acme', keySha256: ['a'.repeat(64)] }],
    limits: {
      global: { requestsPerMinute: 1000, tokensPerMinute: 1_000_000 },
      tenantDefault: { requestsPerMinute: 100, tokensPerMinute: 100_000 },
      userDefault: { requestsPerMinute: 10, tokensPerMinute: 10_000 },
    },
    deployments: {
      'sim-a': { baseUrl: 'http://127.0.0.1:1/v1', timeoutMs: 1000 },
      'sim-b': { baseUrl: 'http://127.0.0.1:2/v1', timeoutMs: 1000 },
    },
    models: { small: { deployments: ['sim-a', 'sim-b'], fallback: [], price: { inputPerMTok: 0.15, outputPerMTok: 0.6 } } },
    tiers: [{ name: 'small', model: 'small', maxComplexity: 1 }],
    router: {},
    invoker: {},
    cache: {},
    degrader: { windowMs: 30_000, minSamples: 10, enterRatios: [0.2, 0.5, 0.9], hysteresis: 0.1, minHoldMs: 10_000, ...degrader },
    ingress: {},
  });
}
