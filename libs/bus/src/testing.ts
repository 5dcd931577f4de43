// Test support for *.int.spec.ts: a private nats-server with the Sluice topology and a config,
// so stream and bucket names never collide with other tests or the shared server.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEvent, type AnyEvent, type SluiceEvent } from '@sluice/contracts';
import { createLogger, type Logger } from '@sluice/telemetry';
import { connectBus, type Bus } from './connect.js';
import { putConfig, watchControl, type Control } from './control.js';
import { freePort, startNats, type LocalNats } from './nats-server.js';
import { ensureTopology, type Buckets } from './topology.js';

export interface TestBus {
  nats: LocalNats;
  bus: Bus;
  buckets: Buckets;
  control: Control;
  /** Silent unless LOG_LEVEL is set, for debugging a test. */
  log: Logger;
  stop(): Promise<void>;
}

/**
 * The smallest valid config: tenants as given (each gets a placeholder key hash), one unreachable
 * deployment, one model, one tier, generous limits unless `limits` overrides them.
 */
export function minimalConfig(tenants: Array<Record<string, unknown>>, limits?: Record<string, unknown>) {
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

/** `name` labels the logger, the connection and the temp store (default "test"). */
export async function startTestBus(config: unknown, opts: { name?: string } = {}): Promise<TestBus> {
  const name = opts.name ?? 'test';
  const dir = mkdtempSync(join(tmpdir(), `sluice-${name}-`));
  let nats: LocalNats | undefined;
  try {
    nats = await startNats(dir, await freePort());
    const log = createLogger(name, process.env.LOG_LEVEL ?? 'silent');
    const bus = await connectBus(nats.url, `${name}-test`, log);
    const buckets = await ensureTopology(bus);
    await putConfig(buckets.control, config);
    const control = await watchControl(buckets.control, log);
    const server = nats;
    return {
      nats: server,
      bus,
      buckets,
      control,
      log,
      async stop() {
        control.stop();
        await bus.nc.close();
        await server.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    // a bad config must not leave the server running
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/** Collects every event published to the stream's subjects (a core subscription sees them too). */
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
