/**
 * A circuit breaker per deployment, pure: every function takes the circuit and `now` and
 * returns the next circuit plus the transition to publish, if any.
 *
 * closed --(threshold consecutive failures)--> open --(openMs elapsed)--> half-open (one trial)
 * half-open --(trial succeeds)--> closed;  half-open --(trial fails)--> open again.
 */
type CircuitState = 'closed' | 'open' | 'half-open';

export interface Circuit {
  state: CircuitState;
  /** Consecutive failures. */
  failures: number;
  /** When it last opened (epoch ms). */
  openedAt: number;
  /** Half-open only: the one trial call is in flight, everyone else skips. */
  trialInFlight: boolean;
  /** How many times it opened or closed; makes transition event ids unique. */
  transitions: number;
}

export interface CircuitSettings {
  circuitFailureThreshold: number;
  circuitOpenMs: number;
}

export type Transition = { to: 'opened'; failures: number; openForMs: number } | { to: 'closed' };

export const closedCircuit: Circuit = { state: 'closed', failures: 0, openedAt: 0, trialInFlight: false, transitions: 0 };

export interface Admission {
  allow: boolean;
  circuit: Circuit;
  /** Why a call was refused, or that it is the half-open trial. */
  reason?: string;
}

/** May a call go to this deployment now? Taking the half-open trial is part of the answer. */
export function admit(c: Circuit, now: number, s: CircuitSettings): Admission {
  switch (c.state) {
    case 'closed':
      return { allow: true, circuit: c };
    case 'open': {
      const left = c.openedAt + s.circuitOpenMs - now;
      if (left > 0) return { allow: false, circuit: c, reason: `circuit open for another ${left} ms` };
      return { allow: true, circuit: { ...c, state: 'half-open', trialInFlight: true }, reason: 'half-open trial' };
    }
    case 'half-open':
      if (c.trialInFlight) return { allow: false, circuit: c, reason: 'circuit half-open, trial call in flight' };
      return { allow: true, circuit: { ...c, trialInFlight: true }, reason: 'half-open trial' };
    default: {
      const _exhaustive: never = c.state;
      return _exhaustive;
    }
  }
}

export interface Outcome {
  circuit: Circuit;
  transition?: Transition;
}

/** The deployment answered. A success from a call that started before the circuit opened does not close it. */
export function recordSuccess(c: Circuit): Outcome {
  switch (c.state) {
    case 'closed':
      return { circuit: c.failures === 0 ? c : { ...c, failures: 0 } };
    case 'half-open':
      return { circuit: { ...closedCircuit, transitions: c.transitions + 1 }, transition: { to: 'closed' } };
    case 'open':
      return { circuit: c };
    default: {
      const _exhaustive: never = c.state;
      return _exhaustive;
    }
  }
}

/** The deployment failed (5xx, 429, timeout, connection, auth). */
export function recordFailure(c: Circuit, now: number, s: CircuitSettings): Outcome {
  const failures = c.failures + 1;
  const open = (): Outcome => ({
    circuit: { state: 'open', failures, openedAt: now, trialInFlight: false, transitions: c.transitions + 1 },
    transition: { to: 'opened', failures, openForMs: s.circuitOpenMs },
  });
  switch (c.state) {
    case 'closed':
      return failures >= s.circuitFailureThreshold ? open() : { circuit: { ...c, failures } };
    case 'half-open':
      return open();
    case 'open':
      // a call admitted before it opened, failing late: it is already open
      return { circuit: { ...c, failures } };
    default: {
      const _exhaustive: never = c.state;
      return _exhaustive;
    }
  }
}

/**
 * The call says nothing about the deployment's health (a 400 that is the request's own fault):
 * frees the half-open trial so the next request can test the deployment.
 */
export function recordNeutral(c: Circuit): Outcome {
  return { circuit: c.state === 'half-open' ? { ...c, trialInFlight: false } : c };
}
