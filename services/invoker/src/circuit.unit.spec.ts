import { describe, expect, it } from 'vitest';
import { admit, closedCircuit, decide, type Circuit, type CircuitInput, type CircuitSettings, type Transition } from './circuit.js';

const s: CircuitSettings = { circuitFailureThreshold: 3, circuitOpenMs: 1000 };

/** Given a circuit, when these inputs come (each at its time), then the circuit and the transitions. */
function given(c: Circuit, inputs: Array<[CircuitInput, number]>, settings = s) {
  const transitions: Transition[] = [];
  const refused: string[] = [];
  for (const [input, now] of inputs) {
    const o = decide(c, input, now, settings);
    c = o.circuit;
    if (o.transition) transitions.push(o.transition);
    if (o.refused) refused.push(o.refused);
  }
  return { circuit: c, transitions, refused };
}

const fail = (n: number, now: number): Array<[CircuitInput, number]> => Array.from({ length: n }, () => [{ kind: 'failure' }, now]);
const opened = (at = 0) => given(closedCircuit, fail(3, at)).circuit;

describe('circuit', () => {
  it('stays closed below the threshold, and a success resets the count', () => {
    const { circuit, transitions } = given(closedCircuit, fail(2, 0));
    expect(circuit).toMatchObject({ state: 'closed', failures: 2 });
    expect(transitions).toEqual([]);
    expect(decide(circuit, { kind: 'success' }, 1, s)).toEqual({ circuit: { ...circuit, failures: 0 } });
  });

  it('changes nothing (the same object: no write) for a success on a healthy circuit', () => {
    expect(decide(closedCircuit, { kind: 'success' }, 1, s).circuit).toBe(closedCircuit);
    expect(decide(closedCircuit, { kind: 'neutral' }, 1, s).circuit).toBe(closedCircuit);
  });

  it('opens at the threshold, once, and refuses calls while open', () => {
    const { circuit, transitions } = given(closedCircuit, fail(4, 100));
    expect(circuit).toMatchObject({ state: 'open', openedAt: 100, transitions: 1, failures: 3 });
    expect(transitions).toEqual([{ to: 'opened', failures: 3, openForMs: 1000 }]);
    const a = admit(circuit, 1099, s);
    expect(a.allow).toBe(false);
    expect(a.reason).toBe('circuit open for another 1 ms');
  });

  it('ignores late results of calls admitted before it opened (no write)', () => {
    const open = opened();
    expect(decide(open, { kind: 'success' }, 10, s).circuit).toBe(open);
    expect(decide(open, { kind: 'failure' }, 10, s).circuit).toBe(open);
  });

  it('after openMs, the first claim half-opens it and takes the one slot; a second claim is refused', () => {
    const first = decide(opened(), { kind: 'trial', trial: 'r1:1' }, 1000, s);
    expect(first).toEqual({
      circuit: expect.objectContaining({ state: 'half-open', trials: { 'r1:1': 1000 }, successes: 0 }),
      transition: { to: 'half-opened' },
    });
    const second = decide(first.circuit, { kind: 'trial', trial: 'r2:1' }, 1001, s);
    expect(second).toEqual({ circuit: first.circuit, refused: 'circuit half-open, 1 trial call in flight' });
    expect(admit(first.circuit, 1001, s).allow).toBe(false);
  });

  it('lets circuitHalfOpenTrials trials through at once and closes after circuitSuccessesToClose successes', () => {
    const wide = { ...s, circuitHalfOpenTrials: 2, circuitSuccessesToClose: 3 };
    const r = given(
      opened(),
      [
        [{ kind: 'trial', trial: 't1' }, 1000],
        [{ kind: 'trial', trial: 't2' }, 1000],
        [{ kind: 'trial', trial: 't3' }, 1000],
        [{ kind: 'success', trial: 't1' }, 1010],
        [{ kind: 'trial', trial: 't3' }, 1011],
        [{ kind: 'success', trial: 't2' }, 1020],
      ],
      wide,
    );
    expect(r.refused).toEqual(['circuit half-open, 2 trial calls in flight']);
    expect(r.transitions).toEqual([{ to: 'half-opened' }]);
    expect(r.circuit).toMatchObject({ state: 'half-open', successes: 2, trials: { t3: 1011 } });
    const closed = decide(r.circuit, { kind: 'success', trial: 't3' }, 1030, wide);
    expect(closed).toEqual({ circuit: { ...closedCircuit, transitions: 2 }, transition: { to: 'closed', successes: 3 } });
  });

  it('opens again when a trial fails, for another openMs; a non-trial failure in half-open changes nothing', () => {
    const half = decide(opened(), { kind: 'trial', trial: 't1' }, 5000, s).circuit;
    expect(decide(half, { kind: 'failure', trial: 'old' }, 5000, s).circuit).toBe(half);
    const again = decide(half, { kind: 'failure', trial: 't1' }, 5000, s);
    expect(again.transition).toEqual({ to: 'opened', failures: 4, openForMs: 1000 });
    expect(again.circuit).toMatchObject({ state: 'open', openedAt: 5000, transitions: 2 });
    expect(admit(again.circuit, 5999, s).allow).toBe(false);
    expect(admit(again.circuit, 6000, s).allow).toBe(true);
  });

  it('gives the slot back on a neutral result, and takes a trial abandoned for openMs as gone', () => {
    const half = decide(opened(), { kind: 'trial', trial: 't1' }, 1000, s).circuit;
    const freed = decide(half, { kind: 'neutral', trial: 't1' }, 1001, s).circuit;
    expect(freed).toMatchObject({ state: 'half-open', trials: {} });
    expect(decide(freed, { kind: 'trial', trial: 't2' }, 1002, s).refused).toBeUndefined();
    // t1's replica died: its slot is free once it is openMs old
    expect(decide(half, { kind: 'trial', trial: 't2' }, 1999, s).refused).toBeDefined();
    expect(decide(half, { kind: 'trial', trial: 't2' }, 2000, s).circuit.trials).toEqual({ t2: 2000 });
  });

  it('a claim on a circuit that closed meanwhile takes no slot and writes nothing', () => {
    expect(decide(closedCircuit, { kind: 'trial', trial: 't1' }, 0, s)).toEqual({ circuit: closedCircuit });
  });

  it('a 429 with Retry-After pauses without counting a failure, and admission skips it until then', () => {
    const near = given(closedCircuit, fail(2, 0)).circuit;
    const p = decide(near, { kind: 'paused', retryAfterMs: 2000 }, 100, s);
    expect(p.transition).toEqual({ to: 'paused', retryAfterMs: 2000, until: 2100 });
    expect(p.circuit).toMatchObject({ state: 'closed', failures: 2, pausedUntil: 2100 });
    expect(admit(p.circuit, 2099, s)).toMatchObject({ allow: false, reason: "paused by the upstream's Retry-After for another 1 ms" });
    expect(admit(p.circuit, 2100, s).allow).toBe(true);
  });

  it('another replica pausing to about the same moment writes nothing; a longer pause extends it', () => {
    const p = decide(closedCircuit, { kind: 'paused', retryAfterMs: 2000 }, 100, s).circuit;
    expect(decide(p, { kind: 'paused', retryAfterMs: 2000 }, 150, s).circuit).toBe(p);
    expect(decide(p, { kind: 'paused', retryAfterMs: 5000 }, 150, s)).toMatchObject({ circuit: { pausedUntil: 5150 }, transition: { until: 5150 } });
  });

  it('a pause outlives the circuit opening and closing', () => {
    const p = decide(closedCircuit, { kind: 'paused', retryAfterMs: 60_000 }, 0, s).circuit;
    const open = given(p, fail(3, 10)).circuit;
    expect(open).toMatchObject({ state: 'open', pausedUntil: 60_000 });
    const half = decide({ ...open, pausedUntil: 500 }, { kind: 'trial', trial: 't1' }, 1010, s).circuit;
    const closed = decide({ ...half, pausedUntil: 90_000 }, { kind: 'success', trial: 't1' }, 1020, s).circuit;
    expect(closed).toEqual({ ...closedCircuit, transitions: 2, pausedUntil: 90_000 });
  });

  it('a trial answered 429 with Retry-After gives its slot back and pauses', () => {
    const half = decide(opened(), { kind: 'trial', trial: 't1' }, 1000, s).circuit;
    expect(decide(half, { kind: 'paused', retryAfterMs: 500, trial: 't1' }, 1010, s).circuit).toMatchObject({
      state: 'half-open',
      trials: {},
      pausedUntil: 1510,
    });
  });
});
