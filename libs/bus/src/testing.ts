// The test kit. For *.int.spec.ts: a private nats-server with the Sluice topology and a config,
// so stream and bucket names never collide with other tests or the shared server, and a
// collector of the events it carries. For every tier: `eventually`, the one way a test waits.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MsgHdrs } from '@nats-io/transport-node';
import { parseEvent, Subjects, type AnyEvent, type EventType, type SluiceEvent } from '@sluice/contracts';
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
    await putConfig(buckets, config);
    // with the key hashes, as ingress and the ledger see it: the test bus stands in for either
    const control = await watchControl(buckets.control, log, { keyHashes: buckets.tenantKeys });
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

/** How `eventually` polls: a fixed interval, or (by default) 10 ms doubling to 100 ms. */
export interface EventuallyOptions {
  /** Named in the timeout error when the check kept returning `false`. */
  what?: string;
  /** Poll at this fixed interval instead (a wait whose moment is measured). */
  everyMs?: number;
}

/**
 * Runs `check` until it neither throws nor returns `false`, and resolves with what it returned.
 * After `timeoutMs` it throws the check's last error, or says what it waited for. Polls fast at
 * first and every 100 ms after, so a check that calls a service does not load it.
 *
 * @example
 * await eventually(() => seen.length === 2);
 * const row = await eventually(async () => {
 *   const r = await get('/v1/requests/r1');
 *   expect(r.outcome).toBe('completed');
 *   return r;
 * }, 20_000);
 */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 10_000, opts: EventuallyOptions = {}): Promise<Exclude<T, false>> {
  const end = Date.now() + timeoutMs;
  for (let pause = opts.everyMs ?? 10; ; pause = opts.everyMs ?? Math.min(pause * 2, 100)) {
    let failure: unknown;
    try {
      const value = await check();
      if (value !== false) return value as Exclude<T, false>;
    } catch (e) {
      failure = e;
    }
    if (Date.now() > end) {
      // the check's own error (an assertion, usually) says most about what never became true
      if (failure instanceof Error) throw failure;
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${opts.what ?? 'the check to pass'}${failure === undefined ? '' : `: ${JSON.stringify(failure)}`}`,
      );
    }
    await new Promise((r) => setTimeout(r, pause));
  }
}

/**
 * Polls `find` (as `eventually` does) until it returns something other than undefined, and
 * resolves with it; after `timeoutMs` it throws, saying what it waited for.
 *
 * @example
 * const hit = await eventuallyFound(() => events.find((e) => e.type === 'cache.hit'), 10_000, 'the hit');
 */
export async function eventuallyFound<T>(find: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000, what = 'a value'): Promise<T> {
  const found = await eventually(
    async () => {
      const value = await find();
      if (value === undefined) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      return { value };
    },
    timeoutMs,
    { what },
  );
  return found.value;
}

/** An event as a subscriber saw it, with the NATS headers it was published with. */
export interface Collected<E extends AnyEvent = AnyEvent> {
  event: E;
  /** `Nats-Msg-Id`, and `traceparent` when the publisher traced it. */
  headers: MsgHdrs | undefined;
}

type EventOf<T extends EventType> = Extract<AnyEvent, SluiceEvent<T>>;

/**
 * Collects every event published to the event stream's subjects, in order, with its headers (a
 * core subscription sees what JetStream stores). `stop()` when done.
 *
 * @example
 * const seen = collectEvents(env.bus);
 * await seen.until(() => seen.of('chat.admitted').length === 3);
 * const { event, headers } = await seen.next('chat.routed', requestId);
 */
export function collectEvents(bus: Bus) {
  const entries: Collected[] = [];
  const sub = bus.nc.subscribe(Subjects.allEvents, { callback: (_e, m) => void entries.push({ event: parseEvent(m.data), headers: m.headers }) });
  const saw = () => entries.map(({ event }) => `${event.type}:${event.requestId}`).join(', ');
  return {
    entries,
    /** The events of one type so far, in order. */
    of: <T extends EventType>(type: T): EventOf<T>[] => entries.map(({ event }) => event).filter((e): e is EventOf<T> => e.type === type),
    /** Waits until `predicate` holds; on timeout, says which events came. */
    async until(predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
      await eventually(predicate, timeoutMs).catch((cause: unknown) => {
        throw new Error(`timed out after ${timeoutMs} ms; saw ${saw()}`, { cause });
      });
    },
    /** The first event of a type for a request, with its headers, once it arrives. */
    async next<T extends EventType>(type: T, requestId: string, timeoutMs = 10_000): Promise<Collected<EventOf<T>>> {
      const found = () => entries.find(({ event }) => event.type === type && event.requestId === requestId) ?? false;
      const entry = await eventually(found, timeoutMs).catch((cause: unknown) => {
        throw new Error(`no ${type} for ${requestId} in ${timeoutMs} ms; saw ${saw()}`, { cause });
      });
      return entry as Collected<EventOf<T>>;
    },
    stop: () => sub.unsubscribe(),
  };
}
