import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, ensureTopology, watchControl, type Bus, type Control } from '@sluice/bus';
import { eventually } from '@sluice/bus/testing';
import type { AnyEvent, Candidate } from '@sluice/contracts';
import { createLogger } from '@sluice/telemetry';
import { only, startHarness, type Harness } from './harness.js';
import { wireInvoker, type WiredInvoker } from './service.js';

// Three invoker replicas, each on its own connection with its own watch of sluice_circuits, calling
// real simulators: the circuit of a failing deployment opens once for all three, lets one trial
// through across them after circuitOpenMs, and closes after circuitSuccessesToClose successes.
const invoker = {
  maxAttemptsPerDeployment: 1,
  baseBackoffMs: 5,
  maxBackoffMs: 50,
  circuitFailureThreshold: 3,
  circuitOpenMs: 500,
  circuitHalfOpenTrials: 1,
  circuitSuccessesToClose: 2,
  concurrency: 16,
};
const candidates: Candidate[] = [
  { model: 'gpt-4o-mini', deployment: 'flaky' },
  { model: 'gpt-4o', deployment: 'steady' },
];

let h: Harness;
const buses: Bus[] = [];
const controls: Control[] = [];
const replicas: WiredInvoker[] = [];

beforeAll(async () => {
  h = await startHarness({ flaky: {}, steady: {}, limited: {} }, invoker);
  for (let i = 0; i < 3; i++) {
    const bus = await connectBus(`nats://${h.bus.nc.getServer()}`, `invoker-${i + 1}`);
    buses.push(bus);
    const buckets = await ensureTopology(bus);
    const log = createLogger(`invoker-${i + 1}`, process.env.LOG_LEVEL ?? 'silent');
    const control = await watchControl(buckets.control, log);
    controls.push(control);
    const wired = wireInvoker({ bus, buckets, control, log, env: {} });
    await wired.ready;
    replicas.push(wired);
  }
});

afterAll(async () => {
  for (const r of replicas) r.stop();
  for (const c of controls) c.stop();
  for (const b of buses) await b.nc.close();
  await h?.stop();
});

/** One request through replica `i` (round robin by the caller); resolves once it is answered and stored. */
async function through(i: number, cands = candidates): Promise<string> {
  const event = await h.routed(cands);
  await replicas[i % 3]!.invoke(event);
  return event.requestId;
}

const ofFlaky = (type: 'circuit.opened' | 'circuit.half_opened' | 'circuit.closed', deployment = 'flaky') =>
  h.events.filter((e): e is AnyEvent => e.type === type && e.data.deployment === deployment);
const calledFlaky = (requestId: string) => only(h.events, 'invoke.attempted').some((e) => e.requestId === requestId && e.data.deployment === 'flaky');

describe('circuits across three invoker replicas', () => {
  it('opens once for all three, admits one trial across them after circuitOpenMs, and closes after two successes', async () => {
    h.sims.flaky!.setFaults({ errorRate: 1 });
    // three failures, one through each replica: the third opens the circuit, once
    for (let i = 0; i < 3; i++) await through(i);
    await eventually(() => ofFlaky('circuit.opened').length === 1, 5000, { what: 'circuit.opened' });
    const calls = h.sims.flaky!.stats().requests;
    // every replica now skips flaky without calling it
    const skipped = await Promise.all([0, 1, 2, 0, 1, 2].map((i) => through(i)));
    expect(h.sims.flaky!.stats().requests).toBe(calls);
    for (const id of skipped) expect(calledFlaky(id)).toBe(false);

    // healthy again, but slow: the trial is still in flight while the other requests of the wave ask
    h.sims.flaky!.setFaults({ errorRate: 0, latencyMs: 300 });
    const opened = ofFlaky('circuit.opened')[0]!;
    await eventually(() => Date.now() >= opened.at + invoker.circuitOpenMs, 5000);
    // six requests at once across the three: exactly one trial reaches flaky, the others fall back
    const wave = await Promise.all([0, 1, 2, 0, 1, 2].map((i) => through(i)));
    expect(h.sims.flaky!.stats().requests).toBe(calls + 1);
    expect(wave.filter(calledFlaky)).toHaveLength(1);
    await eventually(() => ofFlaky('circuit.half_opened').length === 1, 5000, { what: 'circuit.half_opened' });
    expect(ofFlaky('circuit.closed')).toEqual([]);

    // the second successful trial (through another replica) closes it; then every replica calls flaky again
    h.sims.flaky!.setFaults({ latencyMs: 0 });
    await through(1);
    await eventually(() => ofFlaky('circuit.closed').length === 1, 5000, { what: 'circuit.closed' });
    const after = await Promise.all([0, 1, 2].map((i) => through(i)));
    expect(after.every(calledFlaky)).toBe(true);
    expect(ofFlaky('circuit.opened')).toHaveLength(1);
    expect(ofFlaky('circuit.half_opened')).toHaveLength(1);
    expect(ofFlaky('circuit.closed')).toHaveLength(1);
  });

  it('a 429 with Retry-After pauses the deployment for every replica and opens nothing', async () => {
    const cands: Candidate[] = [
      { model: 'gpt-4o-mini', deployment: 'limited' },
      { model: 'gpt-4o', deployment: 'steady' },
    ];
    h.sims.limited!.setFaults({ requestsPerMinute: 1 });
    await through(0, cands);
    // the second call gets the 429 (Retry-After about a minute): a pause, not a failure
    await through(1, cands);
    await eventually(() => h.events.some((e) => e.type === 'deployment.paused' && e.data.deployment === 'limited'), 5000, { what: 'deployment.paused' });
    const calls = h.sims.limited!.stats().requests;
    const later = await Promise.all([0, 1, 2, 0, 1, 2].map((i) => through(i, cands)));
    expect(h.sims.limited!.stats().requests).toBe(calls);
    for (const id of later) {
      const first = only(h.events, 'invoke.attempted').find((e) => e.requestId === id)!;
      expect(first.data.deployment).toBe('steady');
      expect(first.reason).toMatch(/skipped gpt-4o-mini@limited: paused by the upstream's Retry-After/);
    }
    expect(h.events.filter((e) => e.type === 'deployment.paused' && e.data.deployment === 'limited')).toHaveLength(1);
    expect(ofFlaky('circuit.opened', 'limited')).toEqual([]);
  });
});
