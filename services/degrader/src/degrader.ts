import { makeEvent, ServiceName, SYSTEM_TENANT, type DegradeState, type SluiceConfig, type SluiceEvent } from '@sluice/contracts';
import { windowStats, type Sample, type WindowStats } from './window.js';

/**
 * The degradation ladder: 0 full service, 1 reduced quality, 2 cached only, 3 static fallback,
 * 4 maintenance. The degrader itself goes no higher than 3; 4 is an operator's decision.
 */
const MAX_AUTOMATIC_LEVEL = 3;
/** With every deployment's circuit open nothing can answer a cache miss, so serve from the cache at least. */
const ALL_CIRCUITS_OPEN_LEVEL = 2;

interface Circuit {
  /** Event time of the last change seen, so a late event cannot undo a newer one. */
  at: number;
  /**
   * Until when the circuit counts as open: `opened + openForMs`, the moment the invoker lets a
   * probe through. Without this end a circuit whose probe never comes (no traffic reaches the
   * invoker at level 2) would hold the level up forever.
   */
  openUntil: number;
}

export interface DegraderState {
  samples: readonly Sample[];
  circuits: ReadonlyMap<string, Circuit>;
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
  | { kind: 'circuitClosed'; deployment: string; at: number }
  | { kind: 'override'; override: number | undefined }
  /** The state last written to the control bucket, read at start so a restart keeps the level and override. */
  | { kind: 'restored'; state: DegradeState }
  /** The clock moved: samples before `windowStart` are forgotten. */
  | { kind: 'tick'; windowStart: number }
  /** A change this degrader decided and published. */
  | { kind: 'changed'; event: SluiceEvent<'degrade.changed'> };

export function initialState(now: number): DegraderState {
  return { samples: [], circuits: new Map(), level: 0, since: now, override: undefined, manual: false };
}

export function evolve(state: DegraderState, signal: Signal): DegraderState {
  switch (signal.kind) {
    case 'attempts':
      return signal.samples.length ? { ...state, samples: [...state.samples, ...signal.samples] } : state;
    case 'circuitOpened':
      return withCircuit(state, signal.deployment, { at: signal.at, openUntil: signal.at + signal.openForMs });
    case 'circuitClosed':
      return withCircuit(state, signal.deployment, { at: signal.at, openUntil: signal.at });
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

function withCircuit(state: DegraderState, deployment: string, next: Circuit): DegraderState {
  const current = state.circuits.get(deployment);
  if (current && current.at > next.at) return state;
  return { ...state, circuits: new Map(state.circuits).set(deployment, next) };
}

/** Deployments whose circuit is open at `now`. */
function openCircuits(state: DegraderState, now: number): string[] {
  return [...state.circuits].filter(([, c]) => c.openUntil > now).map(([d]) => d);
}

/**
 * The level change the signals call for at `now`, or nothing. Raising is immediate; lowering
 * goes one level at a time, only after the level was held `minHoldMs` and only when the failure
 * ratio is below the level's entry ratio minus the hysteresis, so the level does not flap around
 * a threshold. An override fixes the level exactly.
 */
export function decide(state: DegraderState, config: SluiceConfig, now: number): SluiceEvent<'degrade.changed'> | undefined {
  const d = config.degrader;
  const stats = windowStats(state.samples, now - d.windowMs, now, d.minSamples);
  const open = openCircuits(state, now);
  const deployments = Object.keys(config.deployments);
  const allOpen = deployments.length > 0 && deployments.every((name) => open.includes(name));
  const byRatio = ratioLevel(stats.ratio, d.enterRatios);
  const target = allOpen ? Math.max(byRatio, ALL_CIRCUITS_OPEN_LEVEL) : byRatio;
  const change = (to: number, manual: boolean, reason: string) =>
    makeEvent(
      'degrade.changed',
      { requestId: `degrade-${now}`, tenant: SYSTEM_TENANT, service: ServiceName.Degrader, at: now, reason },
      {
        from: state.level,
        to,
        manual,
        signals: { failureRatio: round(stats.rawRatio), samples: stats.samples, openCircuits: open.length, p95LatencyMs: round(stats.p95LatencyMs) },
      },
    );
  const why = () => explain(stats, d.windowMs, d.minSamples, byRatio, d.enterRatios, allOpen ? open : undefined);

  if (state.override !== undefined) {
    if (state.level === state.override && state.manual) return undefined;
    return change(state.override, true, `operator override: level ${state.override}`);
  }
  // the operator handed control back: go straight to what the signals say, not one step per hold
  if (state.manual) return change(target, false, `operator override lifted; ${why()}`);
  if (target > state.level) return change(target, false, why());
  if (target < state.level) {
    const entry = d.enterRatios[state.level - 1] ?? 1;
    const below = round(entry - d.hysteresis);
    const heldMs = now - state.since;
    if (stats.ratio >= below || heldMs < d.minHoldMs) return undefined;
    const measured =
      stats.samples < d.minSamples
        ? `only ${stats.samples} attempts in ${seconds(d.windowMs)} (fewer than ${d.minSamples}, ratio counts as 0)`
        : `failure ratio ${round(stats.ratio)} over ${stats.samples} attempts in ${seconds(d.windowMs)}`;
    return change(
      state.level - 1,
      false,
      `${measured} < ${below} (entry ${entry} − hysteresis ${d.hysteresis}) after ${seconds(heldMs)} at level ${state.level}`,
    );
  }
  return undefined;
}

/** The level a failure ratio calls for: the highest whose entry ratio it reaches. */
export function ratioLevel(ratio: number, enterRatios: readonly number[]): number {
  for (let level = enterRatios.length; level >= 1; level--) if (ratio >= enterRatios[level - 1]!) return level;
  return 0;
}

function explain(
  stats: WindowStats,
  windowMs: number,
  minSamples: number,
  byRatio: number,
  enterRatios: readonly number[],
  allOpen: string[] | undefined,
): string {
  const parts: string[] = [];
  if (byRatio > 0) parts.push(`failure ratio ${round(stats.ratio)} over ${stats.samples} attempts in ${seconds(windowMs)} ≥ ${enterRatios[byRatio - 1]}`);
  if (allOpen && byRatio < ALL_CIRCUITS_OPEN_LEVEL) parts.push(`every deployment's circuit is open (${allOpen.join(', ')}): nothing can answer a cache miss`);
  if (!parts.length) {
    parts.push(
      stats.samples < minSamples
        ? `only ${stats.samples} attempts in ${seconds(windowMs)} (fewer than ${minSamples})`
        : `failure ratio ${round(stats.ratio)} over ${stats.samples} attempts in ${seconds(windowMs)} < ${enterRatios[0]}`,
    );
  }
  return parts.join('; ');
}

/** The control-bucket record for the state after a change, keeping the operator's override. */
export function degradeRecord(state: DegraderState, reason: string, override: number | undefined): DegradeState {
  return { level: state.level, ...(override !== undefined ? { override } : {}), since: state.since, reason };
}

const round = (n: number) => Math.round(n * 100) / 100;
const seconds = (ms: number) => `${Math.round(ms / 100) / 10}s`;
