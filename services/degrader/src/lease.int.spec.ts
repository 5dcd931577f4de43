import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBus, type TestBus } from '@sluice/bus/testing';
import { createLogger } from '@sluice/telemetry';
import { testConfig } from './fixtures.js';
import { openLease } from './lease-kv.js';

const log = createLogger('degrader', 'silent');
let testBus: TestBus;

beforeAll(async () => {
  testBus = await startTestBus(testConfig(), { name: 'degrader-lease' });
});
afterAll(async () => testBus?.stop());

describe('the degrader lease in sluice_leases', () => {
  it('of five replicas beating at once, exactly one leads, every round', async () => {
    const kv = testBus.buckets.leases;
    const leases = ['a', 'b', 'c', 'd', 'e'].map((holder) => openLease(kv, { holder, leaseMs: () => 60_000, log }));
    const holders = new Set<number>();
    for (let round = 0; round < 5; round++) {
      await Promise.all(leases.map((l) => l.beat()));
      const leading = leases.map((l, i) => (l.leading() ? i : -1)).filter((i) => i >= 0);
      expect(leading).toHaveLength(1);
      holders.add(leading[0]!);
    }
    // the holder renews: leadership does not move while it beats
    expect(holders.size).toBe(1);
    // handed back: the next beat of another replica takes it
    const [holder] = holders;
    await leases[holder!]!.stop();
    await Promise.all(leases.filter((_, i) => i !== holder).map((l) => l.beat()));
    expect(leases.filter((l) => l.leading())).toHaveLength(1);
    for (const l of leases) await l.stop();
  });
});
