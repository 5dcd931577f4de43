import type { SluiceConfig } from '@sluice/contracts';
import { windowStats, type Sample, type WindowStats } from './window.js';

/** With every deployment's circuit open nothing can answer a cache miss, so serve from the cache at least. */
const ALL_CIRCUITS_OPEN_LEVEL = 2;

/** Read at a moment: the request path's backlog, or the budgets' burn. Older than three polls it is not judged. */
interface Polled {
  at: number;
}
export interface Backlog extends Polled {
  /** Messages waiting (num_pending) summed over the request path's durables. */
  pending: number;
}
export interface BudgetBurn extends Polled {
  /** Tenant-scope budgets on course to overrun their window. */
  burning: number;
  /** Tenant-scope budgets configured. */
  total: number;
}

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

/** What the signals are judged from (a part of DegraderState). */
export interface SignalState {
  samples: readonly Sample[];
  circuits: ReadonlyMap<string, Circuit>;
  backlog: Backlog | undefined;
  budgets: BudgetBurn | undefined;
}

/** One signal judged against its lines. */
interface Reading {
  /** The level it calls for (0: none). */
  level: number;
  /** The highest level whose line less the hysteresis it still reaches: lowering from a level waits until no signal holds it. */
  holds: number;
  /** What crossed which line, in words (for a level > 0). */
  crossed: string;
  /** What it measures against the line of `level`, in words, when it no longer holds it (nothing worth saying: undefined). */
  calm: (level: number) => string | undefined;
}

export interface Judgement {
  readings: Reading[];
  /** The numbers of `degrade.changed`'s `signals`. */
  numbers: Record<string, number>;
  stats: WindowStats;
  open: string[];
}

/**
 * Every signal judged at `now`: upstream failure ratio and p95 latency over the window, backlog,
 * budget burn, circuits. A signal whose knob is 0 (off) or whose reading is stale is left out.
 */
export function judge(state: SignalState, config: SluiceConfig, now: number): Judgement {
  const d = config.degrader;
  const hysteresis = d.hysteresis;
  const stats = windowStats(state.samples, now - d.windowMs, now, d.minSamples);
  const open = [...state.circuits].filter(([, c]) => c.openUntil > now).map(([name]) => name);
  const deployments = Object.keys(config.deployments);
  const numbers: Record<string, number> = {
    failureRatio: round(stats.rawRatio),
    samples: stats.samples,
    openCircuits: open.length,
    p95LatencyMs: round(stats.p95LatencyMs),
  };
  const readings: Reading[] = [];
  const window = `${stats.samples} attempts in ${seconds(d.windowMs)}`;

  // failure ratio: absolute lines in [0, 1], hysteresis subtracted
  const ratioLevel = levelOf(stats.ratio, d.enterRatios);
  readings.push({
    level: ratioLevel,
    holds: levelOf(stats.ratio, d.enterRatios, (line) => line - hysteresis),
    crossed: `failure ratio ${round(stats.ratio)} over ${window} ≥ ${d.enterRatios[ratioLevel - 1]}`,
    calm: (level) => {
      const entry = d.enterRatios[level - 1] ?? 1;
      const measured =
        stats.samples < d.minSamples ? `only ${window} (fewer than ${d.minSamples}, ratio counts as 0)` : `failure ratio ${round(stats.ratio)} over ${window}`;
      return `${measured} < ${round(entry - hysteresis)} (entry ${entry} − hysteresis ${hysteresis})`;
    },
  });

  const pollFresh = (p: Polled | undefined): p is Polled => p !== undefined && now - p.at <= 3 * (d.pollMs ?? 2000);
  const target = d.latencyP95TargetMs ?? 0;
  if (target > 0 && stats.samples >= d.minSamples) readings.push(scaled('p95 latency', stats.p95LatencyMs, target, 'ms', hysteresis));
  const backlogMax = d.backlogMax ?? 0;
  if (backlogMax > 0 && pollFresh(state.backlog)) {
    numbers.backlog = state.backlog.pending;
    readings.push(scaled('backlog', state.backlog.pending, backlogMax, ' messages', hysteresis));
  }
  const burnLine = d.budgetBurnShare ?? 0;
  if (burnLine > 0 && pollFresh(state.budgets) && state.budgets.total > 0) {
    const { burning, total } = state.budgets;
    const share = burning / total;
    numbers.budgetsBurning = burning;
    numbers.budgetBurnShare = round(share);
    readings.push({
      level: share >= burnLine ? 1 : 0,
      holds: share >= burnLine - hysteresis ? 1 : 0,
      crossed: `${burning} of ${total} tenant budgets on course to overrun their window (${round(share)} ≥ ${burnLine})`,
      calm: () => `${burning} of ${total} tenant budgets on course to overrun (${round(share)} < ${round(burnLine - hysteresis)})`,
    });
  }

  // circuits: no hysteresis, each circuit's open time ends by itself (DegraderState docs)
  if (deployments.length > 0) {
    const share = open.filter((name) => deployments.includes(name)).length / deployments.length;
    const shareLine = d.openCircuitShare ?? 0;
    numbers.openCircuitShare = round(share);
    const level = share >= 1 ? ALL_CIRCUITS_OPEN_LEVEL : shareLine > 0 && share >= shareLine ? 1 : 0;
    readings.push({
      level,
      holds: level,
      crossed:
        level === ALL_CIRCUITS_OPEN_LEVEL
          ? `every deployment's circuit is open (${open.join(', ')}): nothing can answer a cache miss`
          : `${round(share)} of deployments have an open circuit (${open.join(', ')}) ≥ ${shareLine}`,
      calm: () => (open.length ? `${open.length} of ${deployments.length} deployments with an open circuit` : undefined),
    });
  }
  return { readings, numbers, stats, open };
}

/**
 * A signal measured against a target: the target calls for level 1, twice it level 2. It holds a
 * level down to the line less `hysteresis` of it (a share: 0.1 is 10 %).
 */
function scaled(name: string, value: number, line: number, unit: string, hysteresis: number): Reading {
  const lines = [line, 2 * line];
  const level = levelOf(value, lines);
  return {
    level,
    holds: levelOf(value, lines, (l) => l * (1 - hysteresis)),
    crossed: `${name} ${round(value)}${unit} ≥ ${level === 2 ? `twice the target ${line}` : line}${unit}`,
    calm: (at) => `${name} ${round(value)}${unit} < ${round((lines[at - 1] ?? 2 * line) * (1 - hysteresis))}${unit}`,
  };
}

/** The highest level (1-based) whose line the value reaches, after moving each line by `shift`. */
export function levelOf(value: number, lines: readonly number[], shift: (line: number) => number = (line) => line): number {
  for (let level = lines.length; level >= 1; level--) if (value >= shift(lines[level - 1]!)) return level;
  return 0;
}

const round = (n: number) => Math.round(n * 100) / 100;
export const seconds = (ms: number) => `${Math.round(ms / 100) / 10}s`;
