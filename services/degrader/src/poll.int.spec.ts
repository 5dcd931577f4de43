import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeJson } from '@sluice/bus';
import { startTestBus, type TestBus } from '@sluice/bus/testing';
import { budgetPeriod, BudgetKeys, Consumers, Subjects, Topology, type SluiceConfig } from '@sluice/contracts';
import { testConfig } from './fixtures.js';
import { readBacklog, readBudgetBurn } from './poll.js';

let testBus: TestBus;

beforeAll(async () => {
  testBus = await startTestBus(testConfig(), { name: 'degrader-poll' });
});
afterAll(async () => testBus?.stop());

describe('polled signals against a real nats-server', () => {
  it('backlog: the pending messages of the request path, summed; durables that do not exist count 0', async () => {
    const { bus } = testBus;
    expect((await readBacklog(bus, 1)).pending).toBe(0);
    await bus.jsm.consumers.add(Topology.stream.name, {
      durable_name: Consumers.limiter.durable,
      filter_subject: Consumers.limiter.filter,
      ack_policy: 'explicit',
    });
    for (let i = 0; i < 7; i++) await bus.js.publish(Subjects.eventsOf('chat.requested').replace('*', 'acme'), encodeJson({ i }));
    const info = await bus.jsm.consumers.info(Topology.stream.name, Consumers.limiter.durable);
    expect((await readBacklog(bus, 2)).pending).toBe(info.num_pending);
    expect(info.num_pending).toBe(7);
  });

  it('budget burn: tenant budgets read from their spend records, the others left out', async () => {
    const base = testConfig();
    const now = Date.now();
    const config: SluiceConfig = {
      ...base,
      tenants: [
        {
          ...base.tenants[0]!,
          budgets: [
            { id: 'daily', scope: 'tenant', window: 'daily', limitUsd: 10 },
            { id: 'monthly', scope: 'tenant', window: 'monthly', limitUsd: 1000 },
            { id: 'peruser', scope: 'user', window: 'daily', limitUsd: 1 },
          ],
        },
      ],
    };
    // the daily budget has spent all of its limit: burning whatever the hour; the monthly one nothing
    const daily = budgetPeriod('daily', now);
    const spend = { spentNanos: 10_000_000_000, settledNanos: 0, spentUsd: '10', seq: 1 };
    await testBus.buckets.budgets.put(BudgetKeys.spend('acme.daily', daily.windowId), encodeJson(spend));
    expect(await readBudgetBurn(testBus.buckets.budgets, config, now)).toEqual({ at: now, burning: 1, total: 2 });
  });
});
