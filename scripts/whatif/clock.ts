import type { CanaryRollbacks } from '@sluice/bus';
import type { Recording, StateChange } from './record.js';

/**
 * The replay's clock: the recorded state changes (degrade level, circuits, pauses, canary
 * rollbacks, upstreams' rate limits) and the replay's own scheduled work (a completion's cache store and limiter
 * reconciliation), run in time order as the replay moves to each request's arrival. Work at the
 * same ms runs in the order it was scheduled; recorded changes run before scheduled work of the same ms.
 */
export class ReplayClock {
  degradeLevel: number;
  readonly rollbacks: CanaryRollbacks = {};
  private readonly open = new Set<string>();
  private readonly pausedUntil = new Map<string, number>();
  private next = 0;
  private readonly queue: Array<{ at: number; seq: number; run: () => void }> = [];
  private seq = 0;

  /** `observe` takes each recorded `upstream.limits_observed` at its time (the replay's adaptive global limit folds it). */
  constructor(
    private readonly changes: readonly StateChange[],
    recording: Pick<Recording, 'initialDegradeLevel'>,
    private readonly observe: (c: Extract<StateChange, { kind: 'limits' }>) => void = () => {},
  ) {
    this.degradeLevel = recording.initialDegradeLevel;
  }

  /** Runs `run` when the replay reaches `at` (epoch ms). */
  schedule(at: number, run: () => void): void {
    const item = { at, seq: this.seq++, run };
    // binary insertion: the queue stays sorted by (at, seq)
    let lo = 0;
    let hi = this.queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const q = this.queue[mid]!;
      if (q.at < at || (q.at === at && q.seq < item.seq)) lo = mid + 1;
      else hi = mid;
    }
    this.queue.splice(lo, 0, item);
  }

  /** Applies every recorded change and runs all scheduled work up to and including `now`. */
  advance(now: number): void {
    for (;;) {
      const change = this.changes[this.next];
      const work = this.queue[0];
      const changeDue = change !== undefined && change.at <= now;
      const workDue = work !== undefined && work.at <= now;
      if (!changeDue && !workDue) return;
      if (changeDue && (!workDue || change.at <= work.at)) {
        this.apply(change);
        this.next++;
      } else {
        this.queue.shift()!.run();
      }
    }
  }

  /** Runs what is left (completions after the last request). */
  finish(): void {
    this.advance(Infinity);
  }

  /** Whether the invoker would send a deployment anything at `now`: its circuit not open (as recorded) and not paused. */
  healthy(deployment: string, now: number): boolean {
    return !this.open.has(deployment) && (this.pausedUntil.get(deployment) ?? 0) <= now;
  }

  private apply(c: StateChange): void {
    switch (c.kind) {
      case 'degrade':
        this.degradeLevel = c.level;
        break;
      case 'circuit':
        if (c.open) this.open.add(c.deployment);
        else this.open.delete(c.deployment);
        break;
      case 'paused':
        this.pausedUntil.set(c.deployment, c.until);
        break;
      case 'rollback':
        this.rollbacks[c.canary] = c.entry;
        break;
      case 'limits':
        this.observe(c);
        break;
      default: {
        const _exhaustive: never = c;
        throw new Error(`unknown state change ${JSON.stringify(_exhaustive)}`);
      }
    }
  }
}
