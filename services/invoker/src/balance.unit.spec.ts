import { describe, expect, it } from 'vitest';
import { makeEvent, ServiceName, type Candidate, type SluiceConfig } from '@sluice/contracts';
import { chatRequest } from '@sluice/contracts/testing';
import { Balancer, orderBlock, type Option, type Policy } from './balance.js';
import { seededRandom } from '@sluice/openai-sim';
import { closedCircuit, type Circuit } from './circuit.js';

/** A seeded random (mulberry32): the same draws every run, so the shares below are exact. */
const seeded = seededRandom;

const weighted: Policy = { balance: 'weighted', sticky: false, model: 'm' };
const opt = (deployment: string, weight: number, latency: Option['latency'] = 'unmeasured', healthy = true): Option => ({
  deployment,
  weight,
  latency,
  healthy,
});

function shares(options: Option[], policy: Policy, n: number, random = seeded(7)): Record<string, number> {
  const count: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const first = options[orderBlock(options, policy, random).order[0]!]!.deployment;
    count[first] = (count[first] ?? 0) + 1;
  }
  return count;
}

describe('orderBlock: weighted (power of two choices)', () => {
  it('splits 9:1 weights about 9:1 over 10k picks when latencies tie', () => {
    // 170 ms is within 1.5 times 120 ms: a tie, so the weights decide
    const s = shares([opt('east', 9, 120), opt('west', 1, 170)], weighted, 10_000);
    expect(s.east! / 10_000).toBeGreaterThan(0.88);
    expect(s.east! / 10_000).toBeLessThan(0.92);
  });

  it('gives a slow deployment nothing while a fast one is healthy, whatever its weight', () => {
    expect(shares([opt('east', 9, 900), opt('west', 1, 100)], weighted, 1000)).toEqual({ west: 1000 });
  });

  it('lets a somewhat slower one lose only the mixed draws (9:1 -> about 81 %)', () => {
    const s = shares([opt('east', 9, 160), opt('west', 1, 100)], weighted, 10_000);
    expect(s.east! / 10_000).toBeGreaterThan(0.79);
    expect(s.east! / 10_000).toBeLessThan(0.83);
  });

  it('counts an unmeasured deployment as the fastest, so it gets measured', () => {
    // west wins every mixed draw: 1 % + 18 %
    const s = shares([opt('east', 9, 100), opt('west', 1, 'unmeasured')], weighted, 10_000);
    expect(s.west! / 10_000).toBeGreaterThan(0.17);
    expect(s.west! / 10_000).toBeLessThan(0.21);
  });

  it('never picks an open or paused one first, and puts it last', () => {
    const options = [opt('east', 9, 100, false), opt('west', 1, 500), opt('north', 1, 500)];
    for (let i = 0; i < 500; i++) {
      const { order } = orderBlock(options, weighted, seeded(i));
      expect(order[0]).not.toBe(0);
      expect(order[2]).toBe(0);
    }
  });

  it('gives weight 0 nothing unless the others are down', () => {
    expect(shares([opt('east', 1, 500), opt('spare', 0, 100)], weighted, 500)).toEqual({ east: 500 });
    expect(shares([opt('east', 1, 500, false), opt('spare', 0, 100)], weighted, 10)).toEqual({ spare: 10 });
  });

  it('says why, with the weights and latencies it compared', () => {
    const reasons = new Set(Array.from({ length: 50 }, (_, i) => orderBlock([opt('east', 9, 120), opt('west', 1, 200)], weighted, seeded(i)).reason));
    expect([...reasons].sort()).toEqual([
      'm@east chosen of east, west by weight 9:1 and latency 120 ms vs 200 ms (p2c)',
      'm@east chosen of east, west drawn twice by weight 9:1 (p2c)',
      'm@west chosen of east, west drawn twice by weight 9:1 (p2c)',
    ]);
    expect(orderBlock([opt('east', 9, 900), opt('west', 1, 100), opt('north', 1, 100, false)], weighted, seeded(1)).reason).toBe(
      'm@west chosen of east, west, north as the only choice; east slow (900 ms vs 100 ms); north open or paused',
    );
  });

  it('keeps config order when ordered', () => {
    expect(orderBlock([opt('east', 1, 900), opt('west', 9, 1)], { ...weighted, balance: 'ordered' }, seeded(1))).toEqual({
      order: [0, 1],
      reason: 'm@east first of east, west (ordered)',
    });
  });
});

describe('orderBlock: sticky', () => {
  const sticky: Policy = { ...weighted, sticky: true };
  const three = [opt('a', 1), opt('b', 1), opt('c', 1)];
  const firstFor = (user: string, options = three) => options[orderBlock(options, { ...sticky, user }, Math.random).order[0]!]!.deployment;

  it('sends a user to the same deployment every time, and spreads users by weight', () => {
    const users = Array.from({ length: 3000 }, (_, i) => `user-${i}`);
    const count: Record<string, number> = {};
    for (const u of users) {
      const d = firstFor(u);
      for (let k = 0; k < 5; k++) expect(firstFor(u)).toBe(d);
      count[d] = (count[d] ?? 0) + 1;
    }
    for (const d of ['a', 'b', 'c']) expect(count[d]! / 3000).toBeGreaterThan(0.28);
  });

  it('moves only the users of a deployment that goes down, and they come back when it is healthy', () => {
    const down = [opt('a', 1), opt('b', 1, 'unmeasured', false), opt('c', 1)];
    for (let i = 0; i < 500; i++) {
      const u = `user-${i}`;
      const before = firstFor(u);
      const during = firstFor(u, down);
      if (before !== 'b') expect(during).toBe(before);
      else expect(during).not.toBe('b');
    }
  });
});

describe('Balancer', () => {
  const config = {
    invoker: { circuitFailureThreshold: 3, circuitOpenMs: 30_000, latencyEwmaAlpha: 0.5 },
    deployments: { east: { baseUrl: 'http://e', timeoutMs: 1000, weight: 1 }, west: { baseUrl: 'http://w', timeoutMs: 1000, weight: 1 } },
    models: { m: { deployments: ['east', 'west'], fallback: ['n'], price: { inputPerMTok: 0, outputPerMTok: 0 } } },
  } as unknown as SluiceConfig;
  const routed = (candidates: Candidate[]) =>
    makeEvent(
      'chat.routed',
      { requestId: 'r1', tenant: 't', service: ServiceName.Router, at: 0, reason: 'routed' },
      {
        ctx: { request: chatRequest({ model: 'm', promptTokens: 1 }), frontDoor: 'nats' as const, receivedAt: 0, deadline: 60_000 },
        tier: 'small',
        lane: 'standard',
        candidates,
        degradeLevel: 0,
      },
    );
  const candidates: Candidate[] = [
    { model: 'm', deployment: 'east' },
    { model: 'm', deployment: 'west' },
    { model: 'n', deployment: 'east' },
  ];
  const answered = (latencyMs: number) => ({
    kind: 'answered' as const,
    answer: { status: 200, body: {}, usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } },
    latencyMs,
  });

  it('orders within the model block only, learns latency from answers, and skips an open circuit', () => {
    const b = new Balancer(seeded(3));
    b.observe('east', answered(800), config.invoker, 1000);
    b.observe('west', answered(100), config.invoker, 1000);
    const closed = () => closedCircuit;
    const got = b.order(routed(candidates), config, closed, 1500);
    expect(got.event.data.candidates.map((c) => `${c.model}@${c.deployment}`)).toEqual(['m@west', 'm@east', 'n@east']);
    expect(got.note).toBe('m@west chosen of east, west as the only choice; east slow (800 ms vs 100 ms)');

    // the EWMA moves: east recovers (alpha 0.5: 800 -> 450 -> 275 -> 188), west gets slow (100 -> 1050 -> 1525)
    for (const at of [1600, 1700, 1800]) b.observe('east', answered(100), config.invoker, at);
    b.observe('west', answered(2000), config.invoker, 1600);
    b.observe('west', answered(2000), config.invoker, 1700);
    expect(b.order(routed(candidates), config, closed, 1900).event.data.candidates[0]!.deployment).toBe('east');

    const open: Circuit = { ...closedCircuit, state: 'open', openedAt: 1700 };
    const withOpen = b.order(routed(candidates), config, (d) => (d === 'east' ? open : closedCircuit), 1900);
    expect(withOpen.event.data.candidates[0]!.deployment).toBe('west');
    expect(withOpen.note).toBe('m@west chosen of east, west as the only choice; east open or paused');
  });

  it('counts a measurement as stale after a while, so a deployment that lost its traffic is tried again', () => {
    const b = new Balancer(seeded(3));
    b.observe('east', answered(100), config.invoker, 0);
    b.observe('west', answered(900), config.invoker, 0);
    const closed = () => closedCircuit;
    expect(b.order(routed(candidates), config, closed, 1000).event.data.candidates[0]!.deployment).toBe('east');
    // east measured since; west not for 6 s: west is probed once, then the old figure stands until it answers
    b.observe('east', answered(100), config.invoker, 5900);
    const firsts = Array.from({ length: 40 }, (_, i) => b.order(routed(candidates), config, closed, 6000 + i).event.data.candidates[0]!.deployment);
    expect(firsts.filter((d) => d === 'west')).toEqual(['west']);
  });
});
