import { describe, expect, it } from 'vitest';
import { admit, closedCircuit, recordFailure, recordNeutral, recordSuccess, type Circuit } from './circuit.js';

const s = { circuitFailureThreshold: 3, circuitOpenMs: 1000 };

function failTimes(c: Circuit, n: number, now: number) {
  const transitions = [];
  for (let i = 0; i < n; i++) {
    const o = recordFailure(c, now, s);
    c = o.circuit;
    if (o.transition) transitions.push(o.transition);
  }
  return { circuit: c, transitions };
}

describe('circuit', () => {
  it('stays closed below the threshold, and a success resets the count', () => {
    const { circuit, transitions } = failTimes(closedCircuit, 2, 0);
    expect(circuit).toMatchObject({ state: 'closed', failures: 2 });
    expect(transitions).toEqual([]);
    expect(recordSuccess(circuit)).toEqual({ circuit: { ...circuit, failures: 0 } });
  });

  it('opens at the threshold, once, and refuses calls while open', () => {
    const { circuit, transitions } = failTimes(closedCircuit, 4, 100);
    expect(circuit).toMatchObject({ state: 'open', openedAt: 100, transitions: 1 });
    expect(transitions).toEqual([{ to: 'opened', failures: 3, openForMs: 1000 }]);
    const a = admit(circuit, 1099, s);
    expect(a.allow).toBe(false);
    expect(a.reason).toBe('circuit open for another 1 ms');
  });

  it('lets exactly one trial through after openMs, and closes when it succeeds', () => {
    const open = failTimes(closedCircuit, 3, 0).circuit;
    const trial = admit(open, 1000, s);
    expect(trial).toMatchObject({ allow: true, circuit: { state: 'half-open', trialInFlight: true } });
    expect(admit(trial.circuit, 1001, s).allow).toBe(false);
    const closed = recordSuccess(trial.circuit);
    expect(closed.transition).toEqual({ to: 'closed' });
    expect(closed.circuit).toEqual({ ...closedCircuit, transitions: 2 });
    expect(admit(closed.circuit, 1002, s).allow).toBe(true);
  });

  it('opens again when the trial fails, for another openMs', () => {
    const open = failTimes(closedCircuit, 3, 0).circuit;
    const trial = admit(open, 5000, s).circuit;
    const again = recordFailure(trial, 5000, s);
    expect(again.transition).toEqual({ to: 'opened', failures: 4, openForMs: 1000 });
    expect(again.circuit).toMatchObject({ state: 'open', openedAt: 5000, transitions: 2 });
    expect(admit(again.circuit, 5999, s).allow).toBe(false);
    expect(admit(again.circuit, 6000, s).allow).toBe(true);
  });

  it('ignores late results from calls admitted before it opened', () => {
    const open = failTimes(closedCircuit, 3, 0).circuit;
    expect(recordSuccess(open)).toEqual({ circuit: open });
    const late = recordFailure(open, 10, s);
    expect(late.transition).toBeUndefined();
    expect(late.circuit).toMatchObject({ state: 'open', openedAt: 0 });
  });

  it('frees the trial on a neutral result so the next call can test the deployment', () => {
    const trial = admit(failTimes(closedCircuit, 3, 0).circuit, 1000, s).circuit;
    const freed = recordNeutral(trial).circuit;
    expect(freed).toMatchObject({ state: 'half-open', trialInFlight: false });
    expect(admit(freed, 1001, s)).toMatchObject({ allow: true, circuit: { trialInFlight: true } });
    expect(recordNeutral(closedCircuit).circuit).toBe(closedCircuit);
  });
});
