import { describe, expect, it } from 'vitest';
import { BadParam, parseCacheQuery, parseCostsQuery, parseSloQuery } from './params.js';

const now = Date.parse('2025-06-02T00:00:00Z');
const badParam = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    if (e instanceof BadParam) return e.param;
    throw e;
  }
  throw new Error('expected BadParam');
};

describe('parseCacheQuery', () => {
  it('defaults to the last 24 hours by tenant, model and day, and takes kind as a group', () => {
    expect(parseCacheQuery({}, now)).toEqual({ from: new Date('2025-06-01T00:00:00Z'), to: new Date(now), groupBy: ['tenant', 'model', 'day'] });
    expect(parseCacheQuery({ groupBy: 'kind,tenant', tenant: 'acme' }, now)).toMatchObject({ groupBy: ['kind', 'tenant'], tenant: 'acme' });
  });

  it('names the parameter that is wrong', () => {
    expect(badParam(() => parseCacheQuery({ groupBy: 'user' }, now))).toBe('groupBy');
    expect(badParam(() => parseCacheQuery({ from: '2025-06-02', to: '2025-06-01' }, now))).toBe('from');
    expect(badParam(() => parseCacheQuery({ tenant: '' }, now))).toBe('tenant');
  });
});

describe('parseCostsQuery', () => {
  it('defaults to the last 24 hours grouped by tenant', () => {
    expect(parseCostsQuery({}, now)).toEqual({ from: new Date('2025-06-01T00:00:00Z'), to: new Date(now), groupBy: ['tenant'] });
  });

  it('takes dates, a groupBy list and a tenant', () => {
    const q = parseCostsQuery({ from: '2025-05-01', to: '2025-05-02T06:00:00+02:00', groupBy: 'tenant,model,day,model', tenant: 'acme' }, now);
    expect(q).toEqual({ from: new Date('2025-05-01T00:00:00Z'), to: new Date('2025-05-02T04:00:00Z'), groupBy: ['tenant', 'model', 'day'], tenant: 'acme' });
  });

  it('names the parameter that is wrong', () => {
    expect(badParam(() => parseCostsQuery({ from: 'yesterday' }, now))).toBe('from');
    expect(badParam(() => parseCostsQuery({ to: '2025-13-45' }, now))).toBe('to');
    expect(badParam(() => parseCostsQuery({ groupBy: 'tenant,planet' }, now))).toBe('groupBy');
    expect(badParam(() => parseCostsQuery({ groupBy: '' }, now))).toBe('groupBy');
    expect(badParam(() => parseCostsQuery({ from: '2025-06-02', to: '2025-06-01' }, now))).toBe('from');
    expect(badParam(() => parseCostsQuery({ tenant: ['a', 'b'] }, now))).toBe('tenant');
  });
});

describe('parseSloQuery', () => {
  it('defaults to the last hour, ungrouped', () => {
    expect(parseSloQuery({}, now)).toEqual({ window: '1h', from: new Date(now - 3_600_000), to: new Date(now) });
  });

  it('takes minutes, hours and days and one group', () => {
    expect(parseSloQuery({ window: '15m' }, now).from).toEqual(new Date(now - 15 * 60_000));
    expect(parseSloQuery({ window: '7d', groupBy: 'model' }, now)).toMatchObject({ from: new Date(now - 7 * 86_400_000), groupBy: 'model' });
  });

  it('names the parameter that is wrong', () => {
    for (const window of ['0h', '1w', 'h', '-1h', '400d', '1.5h']) expect(badParam(() => parseSloQuery({ window }, now))).toBe('window');
    expect(badParam(() => parseSloQuery({ groupBy: 'user' }, now))).toBe('groupBy');
    expect(badParam(() => parseSloQuery({ groupBy: 'model,tenant' }, now))).toBe('groupBy');
    expect(badParam(() => parseSloQuery({ tenant: '' }, now))).toBe('tenant');
    expect(badParam(() => parseSloQuery({ tenant: ['a', 'b'] }, now))).toBe('tenant');
  });

  it('narrows to one tenant', () => {
    expect(parseSloQuery({ tenant: 'acme' }, now)).toMatchObject({ tenant: 'acme' });
  });
});
