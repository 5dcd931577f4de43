import { describe, expect, it } from 'vitest';
import { parseConfig } from '@sluice/contracts';
import { minimalConfig } from '@sluice/bus/testing';
import { resolveLane } from './lanes.js';
import { checkBody, validateRequest } from './validate.js';

const lanes = { lanes: { features: { 'nightly-report': 'batch' as const, chat: 'realtime' as const } } };

describe('resolveLane', () => {
  it('given nothing names a lane, then standard, by default', () => {
    expect(resolveLane({}, lanes)).toEqual({ lane: 'standard', source: 'default', reason: 'lane standard (the default)' });
  });

  it("given the tenant has a lane, then the tenant's", () => {
    expect(resolveLane({ tenantLane: 'low' }, lanes)).toMatchObject({ lane: 'low', source: 'tenant' });
  });

  it("given a feature rule, then it beats the tenant's lane", () => {
    expect(resolveLane({ feature: 'nightly-report', tenantLane: 'low' }, lanes)).toEqual({
      lane: 'batch',
      source: 'feature',
      reason: 'lane batch (feature nightly-report)',
    });
  });

  it('given a feature no rule names, then it falls through to the tenant', () => {
    expect(resolveLane({ feature: 'other', tenantLane: 'low' }, lanes)).toMatchObject({ lane: 'low', source: 'tenant' });
    // not a property of every object: a feature called like one is no rule
    expect(resolveLane({ feature: 'toString' }, lanes)).toMatchObject({ lane: 'standard', source: 'default' });
  });

  it("given the request asks, then its ask beats the feature's rule", () => {
    expect(resolveLane({ requested: 'critical', feature: 'nightly-report', tenantLane: 'low' }, lanes)).toMatchObject({ lane: 'critical', source: 'request' });
  });

  it("given a virtual key with a lane, then the key's lane whatever the request asks", () => {
    expect(resolveLane({ keyLane: 'batch', requested: 'critical', feature: 'chat' }, lanes)).toEqual({
      lane: 'batch',
      source: 'key',
      reason: 'lane batch (its virtual key)',
    });
  });
});

describe('the lane of a validated request', () => {
  const config = parseConfig({ ...minimalConfig([{ id: 'acme', lane: 'low' }]), lanes: { features: { reports: 'batch' } } });
  const tenant = config.tenants[0]!;
  const body = { messages: [{ role: 'user', content: 'hi' }] };

  it('is the header over the body, then the feature rule, then the tenant', async () => {
    const header = { priority: { value: 'realtime', param: 'x-sluice-priority' } };
    expect((await validateRequest('chat.completions', { ...body, priority: 'batch' }, header, tenant, config)).request.priority).toBe('realtime');
    expect((await validateRequest('chat.completions', { ...body, priority: 'batch' }, {}, tenant, config)).request.priority).toBe('batch');
    const byFeature = await validateRequest('chat.completions', { ...body, feature: 'reports' }, {}, tenant, config);
    expect(byFeature.request.priority).toBe('batch');
    expect(byFeature.lane.reason).toBe('lane batch (feature reports)');
    expect((await validateRequest('chat.completions', body, {}, tenant, config)).request.priority).toBe('low');
  });

  it("is the key's lane when the key has one", async () => {
    const v = await validateRequest('chat.completions', { ...body, priority: 'critical' }, {}, tenant, config, {
      id: 'key_aaaaaaaaaaaaaaaaaaaa',
      lane: 'batch',
    });
    expect(v.request.priority).toBe('batch');
  });

  it('refuses a priority that is no lane, naming where it came from', () => {
    expect(() => checkBody('chat.completions', { ...body, priority: 'urgent' }, {}, { maxMessages: 8 })).toThrow(/priority must be one of critical, realtime/);
    expect(() => checkBody('chat.completions', body, { priority: { value: 'HIGH', param: 'x-sluice-priority' } }, { maxMessages: 8 })).toThrow(
      /x-sluice-priority must be one of/,
    );
    expect(() => checkBody('chat.completions', { ...body, priority: 3 }, {}, { maxMessages: 8 })).toThrow(/priority must be one of/);
  });
});
