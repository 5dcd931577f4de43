import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Subjects, Topology, type ConsumerSpec, type EventType, type ServiceName } from '@sluice/contracts';
import { admitted, chatRequest, requestContext, requested as requestedBy, routed } from '@sluice/contracts/testing';
import { errors } from '@nats-io/transport-node';
import { consumeEvents, PoisonMessage, type Consumption } from './consume.js';
import { NOTHING } from './decided.js';
import { listParked, replayParked, TransientFault } from './dead-letter.js';
import { publishEvent } from './publish.js';
import { collectEvents, eventually, minimalConfig, startTestBus, type TestBus } from './testing.js';

const rate = { requestsPerMinute: 1000, tokensPerMinute: 1_000_000 };
const config = minimalConfig([{ id: 'acme' }], { global: rate, tenantDefault: rate, userDefault: rate });

const requested = (requestId: string) => requestedBy(requestId, 'acme', { ctx: requestContext(chatRequest()) });

/** A consumer of one event type that emits nothing (test durables). */
function testConsumer(durable: string, type: EventType, service: ServiceName): ConsumerSpec {
  return { durable, service, filter: type === 'chat.routed' ? Subjects.routedAll : Subjects.eventsOf(type), receives: [type], emits: [] };
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
      const durable = `router-t_${lingerMs ?? 'standing'}`;
      const seen = new Map<string, number>();
      const consumption: Consumption = await consumeEvents(env.bus, {
        consumer: testConsumer(durable, 'chat.requested', 'router'),
        concurrency: 64,
        ...(lingerMs !== undefined ? { lingerMs } : {}),
        log: env.log,
        handler: async (event) => {
          seen.set(event.requestId, (seen.get(event.requestId) ?? 0) + 1);
          return NOTHING;
        },
      });
      const ids = Array.from({ length: 150 }, (_, i) => `${durable}_${i}`);
      // a trickle, then a burst larger than one pull's batch would be if it were fixed
      for (const id of ids.slice(0, 20)) {
        await publishEvent(env.bus.js, requested(id));
        await new Promise((r) => setTimeout(r, 5));
      }
      await Promise.all(ids.slice(20).map((id) => publishEvent(env.bus.js, requested(id))));

      await eventually(() => ids.every((id) => seen.has(id)));
      // acks ride on later writes or a short timer; none may be left for the ack wait to redeliver
      await eventually(async () => {
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

describe('consumeEvents parks what it cannot handle', () => {
  let env: TestBus;
  beforeAll(async () => {
    env = await startTestBus(config, { name: 'parking' });
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('parks an event after maxDeliveries failed tries, then handles it when replayed', async () => {
    const durable = 'router-parktest';
    const events = collectEvents(env.bus);
    let broken = true;
    const tries = new Map<string, number>();
    const handled: Array<{ id: string; seq: number; deliveryCount: number; replayed: boolean }> = [];
    const consumption = await consumeEvents(env.bus, {
      consumer: testConsumer(durable, 'chat.requested', 'router'),
      concurrency: 8,
      maxDeliveries: 3,
      log: env.log,
      handler: async (event, delivery) => {
        tries.set(event.requestId, (tries.get(event.requestId) ?? 0) + 1);
        if (broken && event.requestId === 'bad') throw new Error('cannot handle\u0000this');
        handled.push({ id: event.requestId, seq: delivery.seq, deliveryCount: delivery.deliveryCount, replayed: delivery.replayed === true });
        return NOTHING;
      },
    });
    const bad = await publishEvent(env.bus.js, requested('bad'));
    await publishEvent(env.bus.js, requested('good'));
    await events.until(() => events.of('event.parked').length === 1);
    // the good one behind it was not held up, and the bad one was tried exactly maxDeliveries times
    expect(handled.map((h) => h.id)).toEqual(['good']);
    expect(tries.get('bad')).toBe(3);
    const note = events.of('event.parked')[0]!;
    expect(note).toMatchObject({
      requestId: 'bad',
      tenant: 'acme',
      service: 'router',
      data: { durable, streamSeq: bad.seq, eventType: 'chat.requested', deliveries: 3 },
    });
    // one printable line, whatever the error said
    expect(note.data.error).toBe('Error: cannot handle this');
    const dead = await listParked(env.bus, durable);
    expect(dead.map((d) => [d.seq, d.deliveries])).toEqual([[bad.seq, 3]]);
    await eventually(async () => (await env.bus.jsm.consumers.info(Topology.stream.name, durable)).num_ack_pending === 0);

    broken = false;
    await replayParked(env.bus, durable);
    await eventually(() => handled.length === 2);
    expect(handled[1]).toEqual({ id: 'bad', seq: bad.seq, deliveryCount: 4, replayed: true });
    expect(await listParked(env.bus, durable)).toEqual([]);
    await consumption.stop();
    events.stop();
  });

  it('parks a malformed event at once and a PoisonMessage at once', async () => {
    const durable = 'cache-parktest';
    const consumption = await consumeEvents(env.bus, {
      consumer: testConsumer(durable, 'chat.admitted', 'cache'),
      concurrency: 8,
      log: env.log,
      handler: async () => {
        throw new PoisonMessage('never');
      },
    });
    await env.bus.js.publish(Subjects.event('chat.admitted', 'acme'), 'not json');
    await publishEvent(env.bus.js, admitted('p1', 'acme', { ctx: requested('p1').data.ctx, estimatedTokens: 1 }));
    await eventually(async () => (await listParked(env.bus, durable)).length === 2);
    const dead = await listParked(env.bus, durable);
    expect(dead.map((d) => d.deliveries)).toEqual([1, 1]);
    expect(dead[0]!.error).toContain('JSON');
    expect(dead[1]!.error).toContain('never');
    await consumption.stop();
  });

  it('does not count transient faults towards parking', async () => {
    const durable = 'invoker-parktest';
    let calls = 0;
    const consumption = await consumeEvents(env.bus, {
      consumer: testConsumer(durable, 'chat.routed', 'invoker'),
      concurrency: 8,
      maxDeliveries: 2,
      log: env.log,
      handler: async () => {
        calls++;
        // a connection fault, then contention on a shared key (the limiter's counters)
        if (calls <= 2) throw new errors.TimeoutError();
        if (calls === 3) throw new TransientFault('compare-and-set lost 50 times in a row');
        return NOTHING;
      },
    });
    await publishEvent(env.bus.js, routed('t1', 'acme', { ctx: requested('t1').data.ctx }));
    await eventually(() => calls === 4, 20_000);
    await eventually(async () => (await env.bus.jsm.consumers.info(Topology.stream.name, durable)).num_ack_pending === 0);
    expect(await listParked(env.bus, durable)).toEqual([]);
    await consumption.stop();
  });

  it('ends a request that is past its deadline with chat.failed instead of handling it', async () => {
    const durable = 'limiter-deadlinetest';
    const events = collectEvents(env.bus);
    const handled: string[] = [];
    const consumption = await consumeEvents(env.bus, {
      consumer: testConsumer(durable, 'chat.requested', 'limiter'),
      concurrency: 8,
      failPastDeadline: true,
      log: env.log,
      handler: async (e) => {
        handled.push(e.requestId);
        return NOTHING;
      },
    });
    const inbox = env.bus.nc.subscribe('_INBOX.deadline-test', { max: 1 });
    const late = requested('late');
    late.data.ctx.deadline = Date.now() - 1;
    late.data.ctx.replyTo = '_INBOX.deadline-test';
    await publishEvent(env.bus.js, late);
    await publishEvent(env.bus.js, requested('on-time'));
    await events.until(() => events.of('chat.failed').length === 1 && handled.length === 1);
    expect(handled).toEqual(['on-time']);
    expect(events.of('chat.failed')[0]).toMatchObject({ requestId: 'late', service: 'limiter', data: { code: 'deadline_exceeded', status: 504 } });
    for await (const m of inbox)
      expect(JSON.parse(new TextDecoder().decode(m.data))).toMatchObject({ requestId: 'late', error: { code: 'deadline_exceeded', status: 504 } });
    await consumption.stop();
    events.stop();
  });
});
