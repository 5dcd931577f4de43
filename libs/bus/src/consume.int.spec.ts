import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeEvent, Subjects, Topology, type AnyEvent, type ChatRequest } from '@sluice/contracts';
import { consumeEvents, type Consumption } from './consume.js';
import { publishEvent } from './publish.js';
import { minimalConfig, startTestBus, type TestBus } from './testing.js';

const rate = { requestsPerMinute: 1000, tokensPerMinute: 1_000_000 };
const config = minimalConfig([{ id: 'acme', name: 'Acme' }], { global: rate, tenantDefault: rate, userDefault: rate });

function requested(requestId: string) {
  const now = Date.now();
  const request: ChatRequest = { model: 'm1', messages: [{ role: 'user', content: 'hi' }], priority: 'standard', stream: false, params: {}, cache: 'default' };
  return makeEvent('chat.requested', { requestId, tenant: 'acme', service: 'ingress', at: now, reason: 'test' }, { ctx: { request, frontDoor: 'nats', receivedAt: now, deadline: now + 60_000 } });
}

async function until(predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000) {
  const end = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('consumeEvents against a real nats-server', () => {
  let env: TestBus;
  beforeAll(async () => {
    env = await startTestBus(config, { name: 'consume' });
  });
  afterAll(async () => {
    await env?.stop();
  });

  // each case its own durable; both see every chat.requested published after they start
  for (const lingerMs of [undefined, 50]) {
    it(`handles every message once and acks them all (${lingerMs === undefined ? 'standing pull' : `batched pulls, linger ${lingerMs} ms`})`, async () => {
      const durable = `t_${lingerMs ?? 'standing'}`;
      const seen = new Map<string, number>();
      const consumption: Consumption = await consumeEvents(env.bus, {
        durable,
        filter: Subjects.eventsOf('chat.requested'),
        concurrency: 64,
        ...(lingerMs !== undefined ? { lingerMs } : {}),
        log: env.log,
        handler: async (event: AnyEvent) => void seen.set(event.requestId, (seen.get(event.requestId) ?? 0) + 1),
      });
      const ids = Array.from({ length: 150 }, (_, i) => `${durable}_${i}`);
      // a trickle, then a burst larger than one pull's batch would be if it were fixed
      for (const id of ids.slice(0, 20)) {
        await publishEvent(env.bus.js, requested(id));
        await new Promise((r) => setTimeout(r, 5));
      }
      await Promise.all(ids.slice(20).map((id) => publishEvent(env.bus.js, requested(id))));

      await until(() => ids.every((id) => seen.has(id)));
      // acks ride on later writes or a short timer; none may be left for the ack wait to redeliver
      await until(async () => {
        const info = await env.bus.jsm.consumers.info(Topology.stream.name, durable);
        return info.num_ack_pending === 0 && info.num_pending === 0;
      });
      await consumption.stop();
      expect([...seen.values()].every((n) => n === 1)).toBe(true);
      expect(ids.filter((id) => seen.has(id))).toHaveLength(ids.length);
    });
  }

  it('keeps nats requests working after the success-path patch: answers resolve, silence times out', async () => {
    const { nc } = env.bus;
    const sub = nc.subscribe('echo', { callback: (_e, m) => void m.respond(m.data) });
    const answer = await nc.request('echo', new TextEncoder().encode('ping'), { timeout: 2000 });
    expect(new TextDecoder().decode(answer.data)).toBe('ping');
    sub.unsubscribe();
    // nobody listens: the server says so (503), which must still reject
    await expect(nc.request('echo', new Uint8Array(), { timeout: 2000 })).rejects.toThrow();
    const put = await env.buckets.limits.put('probe', new TextEncoder().encode('1'));
    expect((await env.buckets.limits.get('probe'))?.revision).toBe(put);
  });
});
