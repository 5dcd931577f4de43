import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { SluiceClient } from '@sluice/client';
import type { ServiceName } from '@sluice/contracts';
import { eventually } from '@sluice/bus/testing';
import { DEV_KEY, defaultConfig, sleep, startE2eStack, type E2eStack } from './harness.js';
import { startPrivatePostgres, type PrivatePostgres } from './postgres.js';
import { auditRequests, billing, eventsOf, expectBilledExactlyOnce, httpCall, loadLoop, natsCall, prompt, tally } from './chaos-kit.js';

// Crash safety: while two steady streams of requests flow, every service is SIGKILLed in turn,
// nats-server restarts once and the ledger's Postgres goes away for a while. Nothing ingress
// accepted may be lost, nothing charged twice, and the ledger must end up with exactly the
// tokens the upstream served.
const KILL_ORDER: readonly ServiceName[] = ['limiter', 'cache', 'router', 'invoker', 'ledger', 'degrader', 'ingress'];
const PACE_MS = 70; // ~14 req/s per front door
const LOAD_BETWEEN_MS = 3000;

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
    const natsLoad = loadLoop((n) => natsCall(natsDoor, prompt('nats', n)), PACE_MS);
    const httpLoad = loadLoop((n) => httpCall(httpDoor, prompt('http', n)), PACE_MS);
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

    const { requested, lost, doubled, completedIds } = await auditRequests(nc);

    // upstream calls made on a redelivered chat.routed (their attempt ids carry the delivery: `:2.1`)
    const recalled = (await eventsOf(nc, 'invoke.attempted')).filter((e) => /:\d+\.\d+$/.test(e.id)).map((e) => `${e.id} ${e.at}`);
    const { sim, ledger } = await billing(stack);
    console.log(
      JSON.stringify(
        {
          wallMs: Date.now() - started,
          steps,
          nats: tally(natsLoad.outcomes),
          http: tally(httpLoad.outcomes),
          httpInFlightAtIngressKill,
          requested,
          completed: completedIds.size,
          lost: lost.length,
          doubled: doubled.length,
          recalled,
          // a handler that failed after the upstream answered (e.g. publish during the NATS restart) is redelivered
          invokerRedeliveries: stack.logs.filter((l) => l.startsWith('[invoker]') && /redeliver|delivery/.test(l)).map((l) => l.slice(0, 1500)),
          sim,
          ledger,
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

    expectBilledExactlyOnce({ sim, ledger }, completedIds);
  }, 400_000);
});
