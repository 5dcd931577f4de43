import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { SluiceClient, SluiceRequestError } from '@sluice/client';
import { Subjects, Topology, type EventType, type ServiceName } from '@sluice/contracts';
import { eventually } from '@sluice/bus/testing';
import { DEV_KEY, defaultConfig, sleep, startE2eStack, type E2eStack } from './harness.js';
import { startPrivatePostgres, type PrivatePostgres } from './postgres.js';

// Crash safety: while two steady streams of requests flow, every service is SIGKILLed in turn,
// nats-server restarts once and the ledger's Postgres goes away for a while. Nothing ingress
// accepted may be lost, nothing charged twice, and the ledger must end up with exactly the
// tokens the upstream served.
const TERMINAL: readonly EventType[] = ['chat.completed', 'chat.failed', 'chat.throttled', 'chat.shed', 'cache.hit', 'chat.rejected'];
const KILL_ORDER: readonly ServiceName[] = ['limiter', 'cache', 'router', 'invoker', 'ledger', 'degrader', 'ingress'];
const PACE_MS = 70; // ~14 req/s per front door
const LOAD_BETWEEN_MS = 3000;

type Outcome =
  | { kind: 'answered'; requestId: string }
  | { kind: 'coded'; code: string; requestId?: string }
  /** refused: nothing listened, so nothing was accepted; other: the connection broke mid-request */
  | { kind: 'transport'; refused: boolean; message: string };

let stack: E2eStack;
let pgServer: PrivatePostgres;
let nc: NatsConnection;

beforeAll(async () => {
  pgServer = await startPrivatePostgres();
  const config = defaultConfig();
  const plenty = { requestsPerMinute: 10_000_000, tokensPerMinute: 10_000_000_000 };
  config.limits = { global: plenty, tenantDefault: plenty, userDefault: plenty };
  // a static fallback answer (degrade level 3) is not served by the upstream and would muddle the
  // token comparison; the degrader's own tests cover its levels
  config.degrader = { ...config.degrader, minSamples: 1_000_000 };
  stack = await startE2eStack({ config, databaseUrl: pgServer.url, sim: { port: 0, latencyMs: 30 } });
  // a connection of its own that never gives up reconnecting, like the services'
  nc = await connect({ servers: stack.natsUrl, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
}, 180_000);

afterAll(async () => {
  await nc?.close();
  await stack?.close();
  await pgServer?.destroy();
});

/** Open-loop load: one call every PACE_MS until stopped, whatever the answers take. */
function loadLoop(call: (n: number) => Promise<Outcome>) {
  const outcomes: Outcome[] = [];
  const pending = new Set<Promise<void>>();
  let running = true;
  let n = 0;
  const loop = (async () => {
    while (running) {
      const p: Promise<void> = call(n++).then((o) => void outcomes.push(o));
      pending.add(p);
      void p.finally(() => pending.delete(p));
      await sleep(PACE_MS);
    }
  })();
  return {
    outcomes,
    inFlight: () => pending.size,
    started: () => n,
    async stop() {
      running = false;
      await loop;
      await Promise.all([...pending]);
    },
  };
}

function causeCode(e: unknown): string | undefined {
  for (let c: any = e, i = 0; c && i < 6; c = c.cause, i++) if (typeof c.code === 'string' && c.code.startsWith('E')) return c.code;
  return undefined;
}

const prompt = (door: string, n: number) => [{ role: 'user' as const, content: `crash test ${door} ${n} ${Math.random()}` }];

async function natsCall(client: SluiceClient, n: number): Promise<Outcome> {
  try {
    const r = await client.chat({ model: 'gpt-4o-mini', messages: prompt('nats', n) }, { skipCache: true });
    return { kind: 'answered', requestId: r.requestId };
  } catch (e) {
    if (e instanceof SluiceRequestError) return { kind: 'coded', code: e.code, ...(e.requestId ? { requestId: e.requestId } : {}) };
    return { kind: 'transport', refused: false, message: String(e) };
  }
}

async function httpCall(client: OpenAI, n: number): Promise<Outcome> {
  try {
    const { response } = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: prompt('http', n) }, { headers: { 'x-sluice-cache': 'skip' } })
      .withResponse();
    return { kind: 'answered', requestId: response.headers.get('x-sluice-request-id') ?? '' };
  } catch (e) {
    if (e instanceof OpenAI.APIError && e.status !== undefined && typeof e.code === 'string') {
      const requestId = e.headers?.get('x-sluice-request-id');
      return { kind: 'coded', code: e.code, ...(requestId ? { requestId } : {}) };
    }
    return { kind: 'transport', refused: causeCode(e) === 'ECONNREFUSED', message: `${String(e)} (${causeCode(e) ?? 'no code'})` };
  }
}

/** Every event of one type in the stream, read with an ordered consumer. */
async function eventsOf(type: EventType): Promise<Array<{ id: string; requestId: string; at: string }>> {
  const consumer = await jetstream(nc).consumers.get(Topology.stream.name, { filter_subjects: Subjects.eventsOf(type) });
  const out: Array<{ id: string; requestId: string; at: string }> = [];
  if ((await consumer.info()).num_pending === 0) return out;
  const messages = await consumer.consume();
  for await (const m of messages) {
    const e = m.json<{ id: string; requestId: string; at: number }>();
    out.push({ id: e.id, requestId: e.requestId, at: new Date(e.at).toISOString() });
    if (m.info.pending === 0) break;
  }
  return out;
}

/** SIGKILLs a service and waits until the supervisor has it running again; `onExit` runs once the death is seen. */
async function killAndAwaitRestart(name: ServiceName, onExit: () => void = () => undefined): Promise<void> {
  const s = stack.services.get(name)!;
  const before = s.restarts;
  s.kill('SIGKILL');
  // polled every 5 ms: onExit counts the requests started until the death is seen
  await eventually(() => s.restarts !== before, 30_000, { what: `${name} to be restarted`, everyMs: 5 });
  onExit();
  await s.whenReady(60_000);
}

describe('crash safety', () => {
  it('loses nothing, charges nothing twice and ends with exact token totals', async () => {
    const started = Date.now();
    const natsDoor = new SluiceClient(nc, { tenant: 'dev', key: DEV_KEY, timeoutMs: 60_000 });
    // past the request's own deadline (60 s): a reply lost while nats-server restarts is then
    // answered by ingress's 504 deadline_exceeded, a coded answer, not cut by the client first
    const httpDoor = new OpenAI({ baseURL: `${stack.ingressUrl}/v1`, apiKey: DEV_KEY, maxRetries: 0, timeout: 75_000 });
    const natsLoad = loadLoop((n) => natsCall(natsDoor, n));
    const httpLoad = loadLoop((n) => httpCall(httpDoor, n));
    const steps: string[] = [];
    // HTTP calls that ingress may have held when it died: in flight at the kill, plus those
    // started before its exit was seen (SIGKILL lands a few milliseconds after kill() returns)
    let httpInFlightAtIngressKill = 0;

    await sleep(LOAD_BETWEEN_MS);
    for (const name of KILL_ORDER) {
      const inFlight = httpLoad.inFlight();
      const startedAtKill = httpLoad.started();
      await killAndAwaitRestart(name, () => {
        if (name === 'ingress') httpInFlightAtIngressKill = inFlight + httpLoad.started() - startedAtKill;
      });
      steps.push(`${name} restarted ${new Date().toISOString()}`);
      await sleep(LOAD_BETWEEN_MS);
    }
    await stack.restartNats();
    steps.push(`nats-server restarted ${new Date().toISOString()}`);
    await sleep(LOAD_BETWEEN_MS);
    await pgServer.stop();
    await sleep(5000);
    await pgServer.start();
    steps.push('postgres stopped 5 s and started');
    await sleep(LOAD_BETWEEN_MS);

    await Promise.all([natsLoad.stop(), httpLoad.stop()]);
    // the ledger's commit retry backs off while Postgres is away
    await stack.ledgerCaughtUp(90_000);

    // every service resumed consuming after the nats-server restart: each durable is drained
    await stack.consumersDrained();

    // every client call settled
    expect(natsLoad.outcomes).toHaveLength(natsLoad.started());
    expect(httpLoad.outcomes).toHaveLength(httpLoad.started());

    const requested = await eventsOf('chat.requested');
    const terminals = new Map<string, string[]>();
    for (const type of TERMINAL) {
      for (const e of await eventsOf(type)) terminals.set(e.requestId, [...(terminals.get(e.requestId) ?? []), type]);
    }
    const lost = requested.filter((e) => !terminals.has(e.requestId)).map((e) => e.requestId);
    const doubled = [...terminals].filter(([, types]) => types.length > 1);
    const completedIds = new Set([...terminals].filter(([, t]) => t.includes('chat.completed')).map(([id]) => id));

    const tally = (os: Outcome[]) => ({
      answered: os.filter((o) => o.kind === 'answered').length,
      coded: Object.entries(os.reduce<Record<string, number>>((acc, o) => (o.kind === 'coded' ? { ...acc, [o.code]: (acc[o.code] ?? 0) + 1 } : acc), {})),
      refused: os.filter((o) => o.kind === 'transport' && o.refused).length,
      broken: os.filter((o) => o.kind === 'transport' && !o.refused).map((o) => (o.kind === 'transport' ? o.message : '')),
    });
    // upstream calls made on a redelivered chat.routed (their attempt ids carry the delivery: `:2.1`)
    const recalled = (await eventsOf('invoke.attempted')).filter((e) => /:\d+\.\d+$/.test(e.id)).map((e) => `${e.id} ${e.at}`);
    const sim = stack.sim!.stats();
    const costs = await stack.ledger<{ totals: { completed: number; inputTokens: number; outputTokens: number } }>('/v1/costs');
    console.log(
      JSON.stringify(
        {
          wallMs: Date.now() - started,
          steps,
          nats: tally(natsLoad.outcomes),
          http: tally(httpLoad.outcomes),
          httpInFlightAtIngressKill,
          requested: requested.length,
          completed: completedIds.size,
          lost: lost.length,
          doubled: doubled.length,
          recalled,
          // a handler that failed after the upstream answered (e.g. publish during the NATS restart) is redelivered
          invokerRedeliveries: stack.logs.filter((l) => l.startsWith('[invoker]') && /redeliver|delivery/.test(l)).map((l) => l.slice(0, 1500)),
          sim: { completions: sim.completions, replays: sim.replays, promptTokens: sim.promptTokens, completionTokens: sim.completionTokens },
          ledger: costs.totals,
        },
        null,
        1,
      ),
    );

    // none silently lost: each accepted request ended exactly once
    expect(lost).toEqual([]);
    expect(doubled).toEqual([]);
    // the NATS door is answered by the terminal stage directly: no call there may break
    expect(natsLoad.outcomes.filter((o) => o.kind === 'transport')).toEqual([]);
    // an HTTP call can break only if it was inside ingress when ingress died
    expect(tally(httpLoad.outcomes).broken.length).toBeLessThanOrEqual(httpInFlightAtIngressKill);
    // every answer a client got is a completion in the stream
    for (const o of [...natsLoad.outcomes, ...httpLoad.outcomes]) if (o.kind === 'answered') expect(completedIds.has(o.requestId)).toBe(true);

    // not charged twice: one completion per request, one charged row per completion
    expect(costs.totals.completed).toBe(completedIds.size);
    // every call repeated on a redelivery (after a crash, or a handler slower than the ack wait)
    // carried the first call's Idempotency-Key: the upstream served each completion once
    expect(sim.completions).toBe(completedIds.size);
    // exact: the ledger bills what the upstream served, token for token
    expect(costs.totals.inputTokens).toBe(sim.promptTokens);
    expect(costs.totals.outputTokens).toBe(sim.completionTokens);
    expect(costs.totals.inputTokens + costs.totals.outputTokens).toBe(sim.promptTokens + sim.completionTokens);
  }, 400_000);
});
