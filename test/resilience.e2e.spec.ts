import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { hashKey } from '@sluice/contracts';
import { startSim, type Sim } from '@sluice/openai-sim';
import { eventually } from '@sluice/bus/testing';
import { defaultConfig, startE2eStack, type E2eStack } from './harness.js';

// Throttling, fallback, live config and degrade changes, and a service dying mid-traffic.
let stack: E2eStack;
let backup: Sim;
let config: Record<string, any>;

beforeAll(async () => {
  backup = await startSim({ port: 0 });
  config = defaultConfig();
  config.tenants.push({ id: 'tiny', keySha256: [hashKey('sk-tiny')], limits: { requestsPerMinute: 3, tokensPerMinute: 1_000_000 } });
  config.deployments.backup = { baseUrl: backup.url, timeoutMs: 10_000 };
  config.models['gpt-4o-mini'].deployments = ['primary', 'backup'];
  // the fallback test relies on config order (primary first); weighted balancing would split them
  config.models['gpt-4o-mini'].balance = 'ordered';
  config.models['gpt-4o'].deployments = ['primary'];
  config.invoker = { ...config.invoker, maxAttemptsPerDeployment: 1, baseBackoffMs: 5, circuitFailureThreshold: 3, circuitOpenMs: 60_000 };
  // the degrader is exercised by its own tests; here its level must only move when we say so
  config.degrader = { ...config.degrader, minSamples: 100_000 };
  stack = await startE2eStack({ config });
});
afterAll(async () => {
  await stack?.close();
  await backup?.close();
});

const ask = (content: string, model = 'gpt-4o-mini') => ({ model, messages: [{ role: 'user' as const, content }] });

describe('throttling', () => {
  it('answers 429 with Retry-After once the tenant is over its requests/min', async () => {
    const tiny = stack.openai('sk-tiny');
    for (let i = 0; i < 3; i++) await tiny.chat.completions.create(ask(`tiny ${i}`));
    const err = await tiny.chat.completions.create(ask('tiny 4')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const e = err as InstanceType<typeof OpenAI.RateLimitError>;
    expect(e.code).toBe('rate_limit_exceeded');
    expect(Number(e.headers?.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // other tenants are not affected
    await expect(stack.openai().chat.completions.create(ask('not tiny'))).resolves.toBeDefined();
  });
});

describe('failures upstream', () => {
  it('falls back to the next deployment when the first fails, then opens its circuit', async () => {
    stack.sim!.setFaults({ errorRate: 1 });
    const backupBefore = backup.stats().completions;
    const { data, response } = await stack.openai().chat.completions.create(ask('fallback please', 'gpt-4o-mini')).withResponse();
    expect(data.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(backup.stats().completions).toBe(backupBefore + 1);
    const id = response.headers.get('x-sluice-request-id')!;
    const r = await eventually(async () => {
      const t = await stack.ledger(`/v1/requests/${id}`);
      if (t.outcome !== 'completed') throw new Error('not yet');
      return t;
    }, 20_000);
    const types = r.timeline.map((e: { type: string }) => e.type);
    expect(types).toContain('invoke.failed');
    expect(types.indexOf('invoke.failed')).toBeLessThan(types.indexOf('chat.completed'));
    expect(r.deployment).toBe('backup');

    for (let i = 0; i < 3; i++) await stack.openai().chat.completions.create(ask(`open the circuit ${i}`));
    const errorsBefore = stack.sim!.stats().errors;
    await stack.openai().chat.completions.create(ask('primary circuit is open now'));
    expect(stack.sim!.stats().errors).toBe(errorsBefore);
  });

  it('falls back to the next model when every deployment of the first fails', async () => {
    const res = await stack.openai().chat.completions.create(ask('big model please', 'gpt-4o')).withResponse();
    expect(res.data.model).toBe('gpt-4o-mini');
    expect(res.response.headers.get('x-sluice-model')).toBe('gpt-4o-mini');
  });

  it('fails with a coded 502 when nothing can answer', async () => {
    backup.setFaults({ errorRate: 1 });
    try {
      const err = await stack
        .openai()
        .chat.completions.create(ask('nothing works'))
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.APIError);
      expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
      expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('upstream_failed');
    } finally {
      backup.setFaults({ errorRate: 0 });
      stack.sim!.setFaults({ errorRate: 0 });
    }
  });
});

describe('run-time changes without restarts', () => {
  it('applies a degrade override: misses are shed, cached answers still served', async () => {
    const client = stack.openai();
    const cached = await client.chat.completions.create(ask('cached before the storm'));
    await eventually(async () => {
      const again = await client.chat.completions.create(ask('cached before the storm')).withResponse();
      if (again.response.headers.get('x-sluice-cache') !== 'hit') throw new Error('not cached yet');
    }, 20_000);
    await stack.applyDegrade({ level: 2, override: 2, since: Date.now(), reason: 'e2e operator override' });
    try {
      const err = await eventually(async () => {
        const e = await client.chat.completions.create(ask(`uncached ${Math.random()}`)).catch((x: unknown) => x);
        if (!(e instanceof OpenAI.APIError)) throw new Error('not shed yet');
        return e;
      }, 20_000);
      expect(err.status).toBe(503);
      expect(err.code).toBe('service_busy');
      expect(Number(err.headers?.get('retry-after'))).toBeGreaterThanOrEqual(1);
      const hit = await client.chat.completions.create(ask('cached before the storm'));
      expect(hit.choices[0]?.message.content).toBe(cached.choices[0]?.message.content);
    } finally {
      await stack.applyDegrade({ level: 0, since: Date.now(), reason: 'e2e override cleared' });
    }
    await eventually(() => client.chat.completions.create(ask(`after the storm ${Math.random()}`)), 20_000);
  });

  it('accepts a new tenant key as soon as the config changes', async () => {
    const newcomer = stack.openai('sk-newcomer');
    await expect(newcomer.chat.completions.create(ask('let me in'))).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    config.tenants.push({ id: 'newcomer', keySha256: [hashKey('sk-newcomer')] });
    await stack.applyConfig(config);
    const res = await eventually(() => newcomer.chat.completions.create(ask('let me in')), 20_000);
    expect(res.choices[0]?.message.content?.length).toBeGreaterThan(0);
  });
});

describe('supervision', () => {
  it('restarts a killed service and the request waiting in the stream is still answered', async () => {
    const router = stack.services.get('router')!;
    const restartsBefore = router.restarts;
    router.kill('SIGKILL');
    const res = await stack.openai().chat.completions.create(ask('answered after the router came back'));
    expect(res.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(router.restarts).toBe(restartsBefore + 1);
  });
});
