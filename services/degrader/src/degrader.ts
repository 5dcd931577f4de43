import { makeEvent, ServiceName, SYSTEM_TENANT, type DegradeState, type SluiceConfig, type SluiceEvent } from '@sluice/contracts';
import { judge, seconds, type Backlog, type BudgetBurn, type SignalState } from './signals.js';
import type { Sample } from './window.js';

/**
 * The degradation ladder: 0 full service, 1 reduced quality, 2 cached only, 3 static fallback,
 * 4 maintenance. The degrader itself goes no higher than 3; 4 is an operator's decision.
 */
const MAX_AUTOMATIC_LEVEL = 3;

export interface DegraderState extends SignalState {
  level: number;
  /** When the current level was entered; lowering waits `minHoldMs` from here. */
  since: number;
  /** The operator's forced level, from the control bucket. */
  override: number | undefined;
  /** The current level was set by an override; when the override goes, the degrader takes over at once. */
  manual: boolean;
}

export type Signal =
  | { kind: 'attempts'; samples: readonly Sample[] }
  | { kind: 'circuitOpened'; deployment: string; at: number; openForMs: number }
  /** Closed, or half-open: trial calls may go, so it no longer keeps cache misses from an answer. */
  | { kind: 'circuitClosed'; deployment: string; at: number }
  | { kind: 'backlog'; backlog: Backlog }
  | { kind: 'budgets'; budgets: BudgetBurn }
  | { kind: 'override'; override: number | undefined }
  /** The state last written to the control bucket, read at start and at each takeover of the lease. */
  | { kind: 'restored'; state: DegradeState }
  /** The clock moved: samples before `windowStart` are forgotten. */
  | { kind: 'tick'; windowStart: number }
  /** A change this degrader decided and published. */
  | { kind: 'changed'; event: SluiceEvent<'degrade.changed'> };

export function initialState(now: number): DegraderState {
  return { samples: [], circuits: new Map(), backlog: undefined, budgets: undefined, level: 0, since: now, override: undefined, manual: false };
}

export function evolve(state: DegraderState, signal: Signal): DegraderState {
  switch (signal.kind) {
    case 'attempts':
      return signal.samples.length ? { ...state, samples: [...state.samples, ...signal.samples] } : state;
    case 'circuitOpened':
      return withCircuit(state, signal.deployment, { at: signal.at, openUntil: signal.at + signal.openForMs });
    case 'circuitClosed':
      return withCircuit(state, signal.deployment, { at: signal.at, openUntil: signal.at });
    case 'backlog':
      return { ...state, backlog: signal.backlog };
    case 'budgets':
      return { ...state, budgets: signal.budgets };
    case 'override':
      return { ...state, override: signal.override };
    case 'restored': {
      const { level, since, override } = signal.state;
      return { ...state, level, since, override, manual: override !== undefined || level > MAX_AUTOMATIC_LEVEL };
    }
    case 'tick':
      return { ...state, samples: state.samples.filter((s) => s.at >= signal.windowStart) };
    case 'changed': {
      const { from, to, manual } = signal.event.data;
      return { ...state, level: to, since: to !== from ? signal.event.at : state.since, manual };
    }
    default: {
      const _exhaustive: never = signal;
      return _exhaustive;
    }
  }
}

function withCircuit(state: DegraderState, deployment: string, next: { at: number; openUntil: number }): DegraderState {
  const current = state.circuits.get(deployment);
  if (current && current.at > next.at) return state;
  if (current && current.at === next.at && current.openUntil === next.openUntil) return state;
  return { ...state, circuits: new Map(state.circuits).set(deployment, next) };
}

/**
 * The level change the signals call for at `now`, or nothing. Every signal (signals.ts) calls for
 * a level; the highest wins, raised at once. Lowering goes one level at a time, only after the
 * level was held `minHoldMs` and only when no signal still holds the level (is above its line
 * less the hysteresis), so the level does not flap around a line. An override fixes the level
 * exactly. The event carries the numbers (`signals`) and the lines crossed in words (`causes`).
 */
export function decide(state: DegraderState, config: SluiceConfig, now: number): SluiceEvent<'degrade.changed'> | undefined {
  const d = config.degrader;
  const { readings, numbers } = judge(state, config, now);
  const target = Math.min(MAX_AUTOMATIC_LEVEL, Math.max(0, ...readings.map((r) => r.level)));
  const crossed = readings.filter((r) => r.level > 0).map((r) => r.crossed);
  // nothing crossed: say what the failure ratio (always judged) measured
  const why = crossed.length ? crossed : [readings[0]!.calm(1) ?? 'no signal crossed its line'];
  const change = (to: number, manual: boolean, reason: string, causes: string[]) =>
    makeEvent(
      'degrade.changed',
      { requestId: `degrade-${now}`, tenant: SYSTEM_TENANT, service: ServiceName.Degrader, at: now, reason },
      { from: state.level, to, manual, signals: numbers, causes },
    );

  if (state.override !== undefined) {
    if (state.level === state.override && state.manual) return undefined;
    return change(state.override, true, `operator override: level ${state.override}`, [`operator override: level ${state.override}`]);
  }
  // the operator handed control back: go straight to what the signals say, not one step per hold
  if (state.manual) return change(target, false, `operator override lifted; ${why.join('; ')}`, ['operator override lifted', ...crossed]);
  if (target > state.level) return change(target, false, why.join('; '), crossed);
  if (target < state.level) {
    const heldMs = now - state.since;
    if (readings.some((r) => r.holds >= state.level) || heldMs < d.minHoldMs) return undefined;
    const calm = readings.map((r) => r.calm(state.level)).filter((c): c is string => c !== undefined);
    return change(state.level - 1, false, `${calm.join('; ')} after ${seconds(heldMs)} at level ${state.level}`, calm);
  }
  return undefined;
}

/** The control-bucket record for the state after a change, keeping the operator's override. */
export function degradeRecord(state: DegraderState, reason: string, override: number | undefined): DegradeState {
  return { level: state.level, ...(override !== undefined ? { override } : {}), since: state.since, reason };
}
