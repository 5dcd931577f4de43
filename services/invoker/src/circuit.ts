/**
 * A circuit breaker per deployment, pure: `decide(circuit, input, now, settings)` returns the next
 * circuit and the transition to publish, if any. The circuit is shared by every invoker replica
 * (circuit-store.ts moves it in KV by compare-and-set and re-runs `decide` on a lost race), so a
 * decision must hold whichever replica's call it judges.
 *
 * closed --(threshold consecutive failures)--> open --(openMs elapsed, first call)--> half-open
 * half-open: at most `circuitHalfOpenTrials` trial calls at once, across replicas (each claims a slot)
 * half-open --(circuitSuccessesToClose successful trials)--> closed;  a failed trial --> open again.
 * A 429 with Retry-After is no failure: it pauses the deployment until then (`pausedUntil`), which
 * admission treats like an open circuit but which never opens one.
 */
type CircuitState = 'closed' | 'open' | 'half-open';

export interface Circuit {
  state: CircuitState;
  /** Consecutive failures while closed; when open, the count that opened it. */
  failures: number;
  /** When it last opened (epoch ms, the opening replica's clock). */
  openedAt: number;
  /** How many times it opened or closed; makes transition event ids unique. */
  transitions: number;
  /**
   * Half-open: the trial calls in flight, by trial id (`<requestId>:<attempt>`) -> when claimed
   * (epoch ms). A trial not heard from within `circuitOpenMs` (its replica died) frees its slot.
   */
  trials?: Readonly<Record<string, number>>;
  /** Half-open: trials that succeeded so far. */
  successes?: number;
  /** The upstream asked to be left alone until then (429 Retry-After; epoch ms); 0 or missing: not paused. */
  pausedUntil?: number;
  /**
   * Derived, for readers of older shape: every half-open trial slot is taken. Decisions read
   * `trials`, never this.
   */
  trialInFlight?: boolean;
}

export interface CircuitSettings {
  circuitFailureThreshold: number;
  circuitOpenMs: number;
  /** Default 1. */
  circuitHalfOpenTrials?: number;
  /** Default 1. */
  circuitSuccessesToClose?: number;
}

type TrialSettings = Pick<CircuitSettings, 'circuitHalfOpenTrials' | 'circuitSuccessesToClose'>;

export type Transition =
  | { to: 'opened'; failures: number; openForMs: number }
  | { to: 'half-opened' }
  | { to: 'closed'; successes: number }
  | { to: 'paused'; retryAfterMs: number; until: number };

/** What a call told about its deployment; `trial` is the trial id the call held, if it was one. */
export type CircuitInput =
  /** Claim a half-open trial slot before calling (refused when the slots are taken meanwhile). */
  | { kind: 'trial'; trial: string }
  | { kind: 'success'; trial?: string | undefined }
  /** 5xx, timeout, connection error, our key refused: counts towards opening. */
  | { kind: 'failure'; trial?: string | undefined }
  /** Says nothing of the deployment's health (a 400, a cancel, a 429 without Retry-After). */
  | { kind: 'neutral'; trial?: string | undefined }
  /** A 429 with Retry-After: every replica leaves the deployment alone for `retryAfterMs`. */
  | { kind: 'paused'; retryAfterMs: number; trial?: string | undefined };

export const closedCircuit: Circuit = { state: 'closed', failures: 0, openedAt: 0, transitions: 0 };

export interface Admission {
  allow: boolean;
  circuit: Circuit;
  /** Why a call was refused, or that it is a half-open trial. */
  reason?: string;
  /** The call must claim a trial slot (CAS) before it goes. */
  trial?: boolean;
  transition?: Transition;
}

export interface Outcome {
  circuit: Circuit;
  transition?: Transition;
  /** A trial claim lost: why (the slots were taken, or the circuit moved on). */
  refused?: string;
}

/**
 * May a call go to this deployment now? Taking a half-open trial (and moving open -> half-open)
 * is part of the answer; `trial` names the slot (the picker's look-ahead uses a placeholder).
 */
export function admit(c: Circuit, now: number, s: CircuitSettings, trial = 'trial'): Admission {
  const paused = (c.pausedUntil ?? 0) - now;
  if (paused > 0) return { allow: false, circuit: c, reason: `paused by the upstream's Retry-After for another ${paused} ms` };
  switch (c.state) {
    case 'closed':
      return { allow: true, circuit: c };
    case 'open': {
      const left = c.openedAt + s.circuitOpenMs - now;
      if (left > 0) return { allow: false, circuit: c, reason: `circuit open for another ${left} ms` };
      const half = withTrials({ ...c, state: 'half-open', successes: 0 }, { [trial]: now }, s);
      return { allow: true, circuit: half, reason: 'half-open trial', trial: true, transition: { to: 'half-opened' } };
    }
    case 'half-open': {
      const live = liveTrials(c, now, s);
      const slots = s.circuitHalfOpenTrials ?? 1;
      const inFlight = Object.keys(live).length;
      if (inFlight >= slots) return { allow: false, circuit: c, reason: `circuit half-open, ${inFlight} trial call${inFlight === 1 ? '' : 's'} in flight` };
      return { allow: true, circuit: withTrials(c, { ...live, [trial]: now }, s), reason: 'half-open trial', trial: true };
    }
    default: {
      const _exhaustive: never = c.state;
      return _exhaustive;
    }
  }
}

/** The next circuit after `input` at `now`. Returns `c` itself when nothing changes (no write). */
export function decide(c: Circuit, input: CircuitInput, now: number, s: CircuitSettings): Outcome {
  switch (input.kind) {
    case 'trial': {
      const a = admit(c, now, s, input.trial);
      if (!a.allow) return { circuit: c, refused: a.reason ?? 'refused' };
      if (!a.trial) return { circuit: c }; // it closed meanwhile: no slot needed
      return { circuit: a.circuit, ...(a.transition ? { transition: a.transition } : {}) };
    }
    case 'success':
      return recordSuccess(c, input.trial, s);
    case 'failure':
      return recordFailure(c, now, s, input.trial);
    case 'neutral':
      return recordNeutral(c, input.trial, s);
    case 'paused':
      return pause(recordNeutral(c, input.trial, s).circuit, now, input.retryAfterMs);
    default: {
      const _exhaustive: never = input;
      return _exhaustive;
    }
  }
}

/** The deployment answered. Only a trial's success counts in half-open; a late one from before it opened changes nothing. */
function recordSuccess(c: Circuit, trial?: string, s: TrialSettings = {}): Outcome {
  switch (c.state) {
    case 'closed':
      return { circuit: c.failures === 0 ? c : { ...c, failures: 0 } };
    case 'half-open': {
      if (!holds(c, trial)) return { circuit: c };
      const successes = (c.successes ?? 0) + 1;
      if (successes >= (s.circuitSuccessesToClose ?? 1)) {
        return { circuit: { ...closedCircuit, transitions: c.transitions + 1, ...paused(c) }, transition: { to: 'closed', successes } };
      }
      return { circuit: { ...release(c, trial!, s), successes } };
    }
    case 'open':
      return { circuit: c };
    default: {
      const _exhaustive: never = c.state;
      return _exhaustive;
    }
  }
}

/** The deployment failed (5xx, timeout, connection, our key refused). */
function recordFailure(c: Circuit, now: number, s: CircuitSettings, trial?: string): Outcome {
  const open = (failures: number): Outcome => ({
    circuit: { state: 'open', failures, openedAt: now, transitions: c.transitions + 1, ...paused(c) },
    transition: { to: 'opened', failures, openForMs: s.circuitOpenMs },
  });
  switch (c.state) {
    case 'closed': {
      const failures = c.failures + 1;
      return failures >= s.circuitFailureThreshold ? open(failures) : { circuit: { ...c, failures } };
    }
    case 'half-open':
      // a call admitted before it opened, failing late, says nothing the opening did not
      return holds(c, trial) ? open(c.failures + 1) : { circuit: c };
    case 'open':
      return { circuit: c };
    default: {
      const _exhaustive: never = c.state;
      return _exhaustive;
    }
  }
}

/** No verdict on the deployment (a 400 that is the request's own fault, a cancel): gives back the trial slot, if the call held one. */
function recordNeutral(c: Circuit, trial?: string, s: TrialSettings = {}): Outcome {
  return { circuit: c.state === 'half-open' && holds(c, trial) ? release(c, trial!, s) : c };
}

/**
 * Pauses the deployment until `now + retryAfterMs`. A pause that ends within a second (or a
 * tenth of the wait) of the one already there is not written again: every replica hitting the
 * same 429 would otherwise rewrite it, and publish it, once each.
 */
function pause(c: Circuit, now: number, retryAfterMs: number): Outcome {
  const until = now + retryAfterMs;
  if (until <= (c.pausedUntil ?? 0) + Math.min(1000, retryAfterMs / 10)) return { circuit: c };
  return { circuit: { ...c, pausedUntil: until }, transition: { to: 'paused', retryAfterMs, until } };
}

/** A pause outlives the circuit's transitions: the upstream's Retry-After still holds. */
function paused(c: Circuit): Pick<Circuit, 'pausedUntil'> {
  return c.pausedUntil ? { pausedUntil: c.pausedUntil } : {};
}

function holds(c: Circuit, trial: string | undefined): boolean {
  return trial !== undefined && c.trials?.[trial] !== undefined;
}

function release(c: Circuit, trial: string, s: TrialSettings): Circuit {
  const { [trial]: _gone, ...rest } = c.trials ?? {};
  return withTrials(c, rest, s);
}

/** Trials claimed less than `circuitOpenMs` ago; older ones are taken as abandoned (their replica died or hung). */
function liveTrials(c: Circuit, now: number, s: CircuitSettings): Record<string, number> {
  const live: Record<string, number> = {};
  for (const [id, at] of Object.entries(c.trials ?? {})) if (now - at < s.circuitOpenMs) live[id] = at;
  return live;
}

function withTrials(c: Circuit, trials: Record<string, number>, s: TrialSettings): Circuit {
  return { ...c, trials, trialInFlight: Object.keys(trials).length >= (s.circuitHalfOpenTrials ?? 1) };
}
