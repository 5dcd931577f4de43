import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Subscription } from '@nats-io/transport-node';
import { Subjects, type SluiceEvent } from '@sluice/contracts';
import { startSim, type Sim } from '@sluice/openai-sim';
import { eventuallyFound } from '@sluice/bus/testing';
import { defaultConfig, sleep, startE2eStack, type E2eStack } from './harness.js';

// Issue 13, item 1 through the real stack: three invoker replicas share the durable of the
// request path, so steady traffic is spread over them, and they share one circuit per deployment
// (docs/circuits.md). `flaky` is tried first (ordered), `steady` is the fallback. When flaky fails,
// its circuit opens once for all three replicas: none of them calls it any more while every request
// is still answered by steady. After circuitOpenMs, with flaky healthy again, it half-opens once,
// takes at most circuitHalfOpenTrials trial calls at a time across the replicas, closes once after
// circuitSuccessesToClose successes, and gets its traffic back.
const OPEN_MS = 3_000;
const TRIALS = 1;
const SUCCESSES_TO_CLOSE = 2;
/** Trial calls are made slow, so the other requests of the traffic ask while one is in flight. */
const TRIAL_LATENCY_MS = 200;
const MODEL = 'gpt-4o-mini';
/** Clients in flight at once: a few per replica. */
const CONCURRENCY = 6;

let stack: E2eStack;
let flaky: Sim;
let steady: Sim;
const subs: Subscription[] = [];
type CircuitType = 'circuit.opened' | 'circuit.half_opened' | 'circuit.closed';
const circuits: SluiceEvent<CircuitType>[] = [];
const attempts: SluiceEvent<'invoke.attempted'>[] = [];

beforeAll(async () => {
  [flaky, steady] = await Promise.all([startSim({ port: 0 }), startSim({ port: 0 })]);
  const config = defaultConfig();
  // every request an upstream call: no cache answers, no embedding calls
  for (const t of config.tenants) delete t.cache;
  config.deployments.flaky = { baseUrl: flaky.url, timeoutMs: 10_000 };
  config.deployments.steady = { baseUrl: steady.url, timeoutMs: 10_000 };
  // config order, so flaky gets every request while its circuit lets it, and none while it does not
  config.models[MODEL] = { ...config.models[MODEL], deployments: ['flaky', 'steady'], balance: 'ordered' };
  config.invoker = {
    ...config.invoker,
    maxAttemptsPerDeployment: 1,
    baseBackoffMs: 5,
    circuitFailureThreshold: 5,
    circuitOpenMs: OPEN_MS,
    circuitHalfOpenTrials: TRIALS,
    circuitSuccessesToClose: SUCCESSES_TO_CLOSE,
  };
  // the degrader is exercised by its own tests; failures here must not move its level
  config.degrader = { ...config.degrader, minSamples: 100_000 };
  stack = await startE2eStack({ config, replicas: { invoker: 3 } });
  for (const type of ['circuit.opened', 'circuit.half_opened', 'circuit.closed'] as const) {
    subs.push(stack.nc.subscribe(Subjects.eventsOf(type), { callback: (_e, m) => void circuits.push(m.json<SluiceEvent<CircuitType>>()) }));
  }
  subs.push(stack.nc.subscribe(Subjects.eventsOf('invoke.attempted'), { callback: (_e, m) => void attempts.push(m.json<SluiceEvent<'invoke.attempted'>>()) }));
  await stack.nc.flush();
}, 180_000);
afterAll(async () => {
  for (const s of subs) s.unsubscribe();
  await stack?.close();
  await Promise.all([flaky?.close(), steady?.close()]);
});

const ofFlaky = <T extends CircuitType>(type: T) => circuits.filter((e): e is SluiceEvent<T> => e.type === type && e.data.deployment === 'flaky');
const served = (s: Sim) => s.stats().requests;
/** When an attempt's call started: its event is stamped when the call ended. */
const startOf = (e: SluiceEvent<'invoke.attempted'>) => e.at - e.data.latencyMs;

/**
 * The pids among `pids` that hold an established TCP connection to local `port`, read from Linux's
 * /proc (undefined elsewhere): which invoker replicas have called that simulator. Sluice's upstream
 * clients connect lazily and keep connections alive, so a connection means the replica sent calls.
 */
function callersOf(port: number, pids: number[]): number[] | undefined {
  if (!existsSync('/proc/net/tcp')) return undefined;
  const inodes = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(file)) continue;
    // sl local_address rem_address st ... inode (hex ports; state 01 = established)
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 9 && cols[3] === '01' && parseInt(cols[2]!.split(':')[1]!, 16) === port) inodes.add(cols[9]!);
    }
  }
  return pids.filter((pid) =>
    readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return inodes.has(/^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1] ?? '');
      } catch {
        return false;
      }
    }),
  );
}

/** Steady traffic until stopped: each question new (no cache), every answer checked. */
function traffic(): { stop(): Promise<void>; answered: () => number; failures: unknown[] } {
  let running = true;
  let answered = 0;
  let n = 0;
  const failures: unknown[] = [];
  const workers = Array.from({ length: CONCURRENCY }, async () => {
    while (running) {
      const i = n++;
      try {
        const r = await stack.openai().chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: `circuit question ${i}: ${i * 7919}` }] });
        if (!r.choices[0]?.message.content) throw new Error(`request ${i}: empty answer`);
        answered++;
      } catch (e) {
        failures.push(e);
      }
    }
  });
  return {
    answered: () => answered,
    failures,
    async stop() {
      running = false;
      await Promise.all(workers);
    },
  };
}

describe('a circuit shared by three invoker replicas', () => {
  it('opens once for all of them, sends the failing deployment nothing while open, half-opens, takes limited trials and closes once', async () => {
    expect(stack.replicas.get('invoker')).toHaveLength(3);
    const load = traffic();
    try {
      // healthy: flaky answers everything
      await eventuallyFound(() => (served(flaky) >= 20 ? true : undefined), 20_000, 'flaky serving');
      expect(served(steady)).toBe(0);

      const faultAt = Date.now();
      flaky.setFaults({ errorRate: 1 });
      const opened = await eventuallyFound(() => ofFlaky('circuit.opened')[0], 20_000, 'circuit.opened');
      const atOpen = served(flaky);
      // calls admitted before every replica heard of the open may still land; then none
      await sleep(500);
      const settled = served(flaky);
      const settledAt = Date.now();
      const steadyBefore = served(steady);
      const answeredBefore = load.answered();
      await sleep(Math.max(0, opened.at + 0.7 * OPEN_MS - Date.now()));
      const late = served(flaky);
      const quietMs = Date.now() - settledAt;
      expect(late).toBe(settled);
      // ...while requests are still answered, by steady
      expect(served(steady)).toBeGreaterThan(steadyBefore);
      expect(load.answered()).toBeGreaterThan(answeredBefore);
      expect(ofFlaky('circuit.half_opened')).toHaveLength(0);
      // steady is called only while flaky fails or is open (ordered): every replica has called it, so
      // every replica took requests in that time, and none of them called flaky once it was open
      const pids = stack.replicas.get('invoker')!.map((s) => s.pid!);
      const callers = callersOf(Number(new URL(steady.url).port), pids);
      if (callers !== undefined) expect(callers.sort()).toEqual([...pids].sort());

      // healthy again (and slow, so trials are in flight while other requests ask), before the open time ends
      flaky.setFaults({ errorRate: 0, latencyMs: TRIAL_LATENCY_MS });
      const halfOpened = await eventuallyFound(() => ofFlaky('circuit.half_opened')[0], 20_000, 'circuit.half_opened');
      const closed = await eventuallyFound(() => ofFlaky('circuit.closed')[0], 20_000, 'circuit.closed');
      flaky.setFaults({ latencyMs: 0 });
      // traffic returns to flaky
      const back = served(flaky);
      await eventuallyFound(() => (served(flaky) >= back + 20 ? true : undefined), 20_000, 'flaky serving again');
      await sleep(300);
      await load.stop();
      expect(load.failures).toEqual([]);

      const onFlaky = attempts.filter((e) => e.data.deployment === 'flaky');
      const firstFailure = onFlaky.filter((e) => !e.data.ok && e.at >= faultAt).sort((a, b) => a.at - b.at)[0]!;
      // no call started while the circuit was open, once every replica had heard of it
      // (an event's `at` is Date.now(), its latency a monotonic clock: a few ms of slack)
      const whileOpen = onFlaky.filter((e) => startOf(e) > opened.at && startOf(e) < halfOpened.at - 5);
      expect(whileOpen.filter((e) => startOf(e) > opened.at + 500)).toEqual([]);
      // the trials: the first calls after the open had reached every replica. The close is decided when
      // the last trial's success is written; closed.at is stamped after that write, so a call that
      // started just after the close can still come before closed.at: what tells the trials apart is
      // that nothing else ran beside them (one trial slot across the three replicas)
      const after = onFlaky.filter((e) => startOf(e) > opened.at + 500).sort((a, b) => startOf(a) - startOf(b));
      const trials = after.slice(0, SUCCESSES_TO_CLOSE);
      expect(trials.map((e) => e.data.ok)).toEqual(Array(SUCCESSES_TO_CLOSE).fill(true));
      for (const t of trials) {
        const beside = after.filter((e) => e !== t && startOf(e) > startOf(t) - 5 && startOf(e) < t.at - 5);
        expect(beside).toEqual([]);
      }
      expect(closed.at).toBeGreaterThanOrEqual(trials.at(-1)!.at - 5);

      // each transition went out once, from the replica whose write made it
      expect(ofFlaky('circuit.opened')).toHaveLength(1);
      expect(ofFlaky('circuit.half_opened')).toHaveLength(1);
      expect(ofFlaky('circuit.closed')).toHaveLength(1);
      expect(circuits.filter((e) => e.data.deployment !== 'flaky')).toEqual([]);
      expect(opened.data.failures).toBe(5);

      console.log(
        `[circuits, 3 invoker replicas, e2e] ${CONCURRENCY} clients; first failure -> circuit.opened ${opened.at - firstFailure.at} ms ` +
          `(${opened.data.failures} failures); calls flaky received after the open: ${settled - atOpen} in the first 500 ms ` +
          `(${whileOpen.length} started after the open instant), then ${late - settled} in the next ${quietMs} ms; ` +
          `circuit.opened -> half_opened ${halfOpened.at - opened.at} ms (open time ${OPEN_MS}); half_opened -> closed ${closed.at - halfOpened.at} ms ` +
          `with ${trials.length} trial calls (${TRIALS} at a time, ${TRIAL_LATENCY_MS} ms each); first failure -> closed ${closed.at - firstFailure.at} ms; ` +
          `invoker replicas that called steady while flaky failed or was open: ${callers === undefined ? 'unknown (no /proc)' : `${callers.length} of 3`}; ` +
          `${load.answered()} requests answered, 0 failed; flaky ${served(flaky)}, steady ${served(steady)} upstream calls`,
      );
    } finally {
      await load.stop();
    }
  }, 90_000);
});
