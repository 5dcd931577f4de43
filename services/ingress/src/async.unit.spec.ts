import { describe, expect, it } from 'vitest';
import { minimalConfig } from '@sluice/bus/testing';
import { parseConfig } from '@sluice/contracts';
import { asyncAsked, webhookAsked } from './async.js';
import { RequestRejected } from './rejection.js';

// What an async request asks of ingress: the header's values, and which webhook its answer goes to.
const config = parseConfig({
  ...minimalConfig([{ id: 'acme' }, { id: 'beta' }]),
  alerts: {
    webhooks: [
      { id: 'ops', url: 'https://hooks.example.com/ops', secretEnv: 'OPS_SECRET' },
      { id: 'beta-only', url: 'https://hooks.example.com/beta', secretEnv: 'BETA_SECRET', tenants: ['beta'] },
    ],
  },
});

function refused(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof RequestRejected) return e.param;
    throw e;
  }
  return undefined;
}

describe('asyncAsked', () => {
  it('reads true and false in any case, absent as false, and refuses anything else or an async stream', () => {
    expect(asyncAsked(undefined, 'x-sluice-async', false)).toBe(false);
    expect(asyncAsked(' TRUE ', 'x-sluice-async', false)).toBe(true);
    expect(asyncAsked('false', 'x-sluice-async', true)).toBe(false);
    expect(refused(() => asyncAsked('1', 'x-sluice-async', false))).toBe('x-sluice-async');
    expect(refused(() => asyncAsked('true', 'x-sluice-async', true))).toBe('stream');
  });
});

describe('webhookAsked', () => {
  it("given a request's webhook, then it must be the tenant's and the request async", () => {
    expect(webhookAsked('ops', 'x-sluice-webhook', true, 'acme', config)).toBe('ops');
    expect(refused(() => webhookAsked('beta-only', 'x-sluice-webhook', true, 'acme', config))).toBe('x-sluice-webhook');
    expect(refused(() => webhookAsked('nope', 'x-sluice-webhook', true, 'acme', config))).toBe('x-sluice-webhook');
    expect(refused(() => webhookAsked('ops', 'x-sluice-webhook', false, 'acme', config))).toBe('x-sluice-webhook');
  });

  it("given none, then the key's own for an async request, unless the config no longer has it", () => {
    expect(webhookAsked(undefined, 'x-sluice-webhook', true, 'beta', config, 'beta-only')).toBe('beta-only');
    expect(webhookAsked('ops', 'x-sluice-webhook', true, 'beta', config, 'beta-only')).toBe('ops');
    expect(webhookAsked(undefined, 'x-sluice-webhook', false, 'beta', config, 'beta-only')).toBeUndefined();
    expect(webhookAsked(undefined, 'x-sluice-webhook', true, 'beta', config, 'removed')).toBeUndefined();
    expect(webhookAsked(undefined, 'x-sluice-webhook', true, 'acme', config)).toBeUndefined();
  });
});
