// Test support for *.int.spec.ts: a private nats-server with the Sluice topology and a config.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectBus, ensureTopology, putConfig, watchControl, type Bus, type Buckets, type Control } from '@sluice/bus';
import { makeEvent, parseEvent, type AnyEvent, type ChatRequest, type SluiceEvent } from '@sluice/contracts';
import { createLogger, type Logger } from '@sluice/telemetry';
import { freePort, startNats, type LocalNats } from '@sluice/scripts/nats';

export interface IntEnv {
  nats: LocalNats;
  bus: Bus;
  buckets: Buckets;
  control: Control;
  log: Logger;
  stop(): Promise<void>;
}

export function testConfig(tenants: Array<Record<string, unknown>>, limits?: Record<string, unknown>) {
  const rate = { requestsPerMinute: 100_000, tokensPerMinute: 100_000_000 };
  return {
    tenants: tenants.map((t) => ({ keySha256: ['0'.repeat(64)], ...t })),
    limits: { global: rate, tenantDefault: rate, userDefault: rate, ...limits },
    deployments: { d1: { baseUrl: 'http://127.0.0.1:1/v1', timeoutMs: 1000 } },
    models: { m1: { deployments: ['d1'], fallback: [], price: { inputPerMTok: 1, outputPerMTok: 1 } } },
    tiers: [{ name: 'only', model: 'm1', maxComplexity: 1 }],
    router: {},
    invoker: {},
    cache: {},
    degrader: {},
    ingress: {},
  };
}

export async function startEnv(config: unknown): Promise<IntEnv> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-limiter-'));
  const nats = await startNats(dir, await freePort());
  try {
    const log = createLogger('limiter-test', 'silent');
    const bus = await connectBus(nats.url, 'limiter-test');
    const buckets = await ensureTopology(bus);
    await putConfig(buckets.control, config);
    const control = await watchControl(buckets.control, log);
    return {
      nats,
      bus,
      buckets,
      control,
      log,
      async stop() {
        control.stop();
        await bus.nc.close();
        await nats.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    // a bad config must not leave the server running
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

export function chatRequested(tenant: string, requestId: string, request: Partial<ChatRequest> = {}, replyTo?: string) {
  const now = Date.now();
  const full: ChatRequest = { model: 'm1', messages: [{ role: 'user', content: 'hello world' }], priority: 'standard', stream: false, params: {}, cache: 'default', ...request };
  return makeEvent(
    'chat.requested',
    { requestId, tenant, service: 'ingress', at: now, reason: 'test' },
    { ctx: { request: full, frontDoor: 'nats', receivedAt: now, deadline: now + 60_000, ...(replyTo ? { replyTo } : {}) } },
  );
}

/** Collects every event published to the stream's subjects (core subscription sees them too). */
export function collectEvents(bus: Bus) {
  const events: AnyEvent[] = [];
  const sub = bus.nc.subscribe('sluice.evt.>', { callback: (_e, m) => void events.push(parseEvent(m.data)) });
  return {
    events,
    of: <T extends AnyEvent['type']>(type: T) => events.filter((e): e is Extract<AnyEvent, SluiceEvent<T>> => e.type === type),
    async until(predicate: () => boolean, timeoutMs = 10_000) {
      const end = Date.now() + timeoutMs;
      while (!predicate()) {
        if (Date.now() > end) throw new Error(`timed out; saw ${events.map((e) => e.type).join(', ')}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    stop: () => sub.unsubscribe(),
  };
}
