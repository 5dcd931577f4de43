// Test support for the int specs: a private nats-server, ingress in-process, and a fake terminal
// stage that speaks the real protocol (consumes chat.requested, answers on ctx.replyTo).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { consumeEvents, putConfig, type Bus, type Buckets, type Consumption, type ServiceContext } from '@sluice/bus';
import { freePort, startNats as startLocalNats } from '@sluice/bus/nats-server';
import { startTestBus } from '@sluice/bus/testing';
import { Consumers, parseEvent, Subjects, Topology, type AnyEvent, type ChatReply, type RequestContext, type SluiceConfig } from '@sluice/contracts';
import { startFrontDoors, type FrontDoors } from './ingress.js';

export const KEYS = { acme: 'sk-acme-test', beta: 'sk-beta-test' } as const;

function fixtureConfig(): SluiceConfig {
  return JSON.parse(readFileSync(new URL('./fixtures/config.json', import.meta.url), 'utf8')) as SluiceConfig;
}

export interface PrivateNats {
  url: string;
  stop(): Promise<void>;
}

/** A bare nats-server (no topology) on a free port with a temporary store, so no name collides. */
export async function startNats(): Promise<PrivateNats> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-ingress-'));
  try {
    const nats = await startLocalNats(dir, await freePort());
    return {
      url: nats.url,
      async stop() {
        await nats.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/** What the fake terminal stage does, chosen by the last message's content. */
function answer(ctx: RequestContext, requestId: string): ChatReply[] {
  const req = ctx.request;
  const said = req.messages.at(-1)!.content;
  const model = req.model === 'auto' ? 'small' : req.model;
  const usage = { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 };
  const result = (content: string, cached = false): ChatReply => ({
    requestId,
    model,
    message: { role: 'assistant', content },
    finishReason: 'stop',
    usage,
    cached,
    created: Math.floor(ctx.receivedAt / 1000),
  });
  const chunk = (content: string, cached?: boolean): ChatReply => ({ requestId, model, chunk: { content }, ...(cached ? { cached } : {}) });
  switch (said) {
    case 'silent':
      return [];
    case 'throttle':
      return [{ requestId, error: { code: 'rate_limited', message: 'Rate limit reached; retry after the given time.', status: 429, retryAfterMs: 1500 } }];
    case 'shed':
      return [{ requestId, error: { code: 'service_busy', message: 'The gateway is shedding load.', status: 503, retryAfterMs: 5000 } }];
    case 'fail-midstream':
      return [chunk('partial'), { requestId, error: { code: 'upstream_failed', message: 'Every upstream deployment failed.', status: 502 } }];
    case 'cached':
      return req.stream ? [chunk('from cache', true), result('from cache', true)] : [result('from cache', true)];
    case 'result-only':
      return [result('whole at once')];
    default:
      return req.stream ? [chunk('Hel'), chunk('lo'), result('Hello')] : [result(`echo: ${said}`)];
  }
}

export interface Harness {
  nats: PrivateNats;
  bus: Bus;
  buckets: Buckets;
  ctx: ServiceContext;
  ingress: FrontDoors;
  /** chat.requested events the fake stage consumed, newest last. */
  requested: Array<AnyEvent & { type: 'chat.requested' }>;
  baseURL: string;
  /** The last chat.rejected event published for a tenant. */
  lastRejected(tenant: string): Promise<AnyEvent & { type: 'chat.rejected' }>;
  /** Writes a config and waits until ingress applied it. */
  applyConfig(change: (c: SluiceConfig) => SluiceConfig): Promise<void>;
  stop(): Promise<void>;
}

export async function startHarness(): Promise<Harness> {
  const testBus = await startTestBus(fixtureConfig(), { name: 'ingress' });
  const { nats, log, bus, buckets, control } = testBus;
  const ctx: ServiceContext = { name: 'ingress', log, bus, buckets, control, env: { SLUICE_HOST: '127.0.0.1', SLUICE_INGRESS_PORT: '0' } };
  const ingress = await startFrontDoors(ctx);

  const requested: Harness['requested'] = [];
  // a stand-in for the limiter's durable: what ingress publishes, answered as a terminal stage would
  const downstream: Consumption = await consumeEvents(bus, {
    consumer: { ...Consumers.limiter, durable: 'limiter-fake-terminal-stage', emits: [] },
    concurrency: 64,
    log,
    handler: async (event) => {
      requested.push(event);
      return { events: [], replies: answer(event.data.ctx, event.requestId).map((reply) => ({ to: event.data.ctx.replyTo, reply })) };
    },
  });

  return {
    nats,
    bus,
    buckets,
    ctx,
    ingress,
    requested,
    baseURL: `http://127.0.0.1:${ingress.port}/v1`,
    async lastRejected(tenant) {
      const msg = await bus.jsm.streams.getMessage(Topology.stream.name, { last_by_subj: Subjects.event('chat.rejected', tenant) });
      return parseEvent(msg!.data) as AnyEvent & { type: 'chat.rejected' };
    },
    async applyConfig(change) {
      const applied = JSON.stringify(await putConfig(buckets.control, change(fixtureConfig())));
      for (let i = 0; JSON.stringify(control.config()) !== applied; i++) {
        if (i > 200) throw new Error('ingress did not apply the config');
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async stop() {
      for (const close of [...ingress.closers].reverse()) await close();
      await downstream.stop();
      // drain first: replies still in flight reach their inboxes before the connection closes
      await bus.nc.drain();
      await testBus.stop();
    },
  };
}
