// Test support for *.int.spec.ts: a private nats-server with the Sluice topology and a config.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectBus, ensureTopology, putConfig, watchControl, type Bus, type Buckets, type Control } from '@sluice/bus';
import { parseEvent, type AnyEvent, type SluiceEvent } from '@sluice/contracts';
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

export async function startEnv(config: unknown): Promise<IntEnv> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-router-'));
  const nats = await startNats(dir, await freePort());
  try {
    const log = createLogger('router-test', 'silent');
    const bus = await connectBus(nats.url, 'router-test');
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

/** Collects every event published to the stream's subjects (a core subscription sees them too). */
export function collectEvents(bus: Bus) {
  const events: Array<{ event: AnyEvent; traceparent?: string }> = [];
  const sub = bus.nc.subscribe('sluice.evt.>', {
    callback: (_e, m) => void events.push({ event: parseEvent(m.data), ...(m.headers?.get('traceparent') ? { traceparent: m.headers.get('traceparent') } : {}) }),
  });
  return {
    events,
    /** The first event of a type for a request, once it arrives. */
    async next<T extends AnyEvent['type']>(type: T, requestId: string, timeoutMs = 10_000): Promise<{ event: SluiceEvent<T>; traceparent?: string }> {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const found = events.find((e) => e.event.type === type && e.event.requestId === requestId);
        if (found) return found as { event: SluiceEvent<T>; traceparent?: string };
        if (Date.now() > end) throw new Error(`no ${type} for ${requestId}; saw ${events.map((e) => `${e.event.type}:${e.event.requestId}`).join(', ')}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    stop: () => sub.unsubscribe(),
  };
}
