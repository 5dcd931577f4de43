import type { DegradeState, SluiceConfig, SluiceEvent } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import { decide, evolve, type DegraderState, type Signal } from './degrader.js';
import type { Sample } from './window.js';

export interface LoopDeps {
  config: () => SluiceConfig;
  /** Publishes the change to the stream (awaiting its ack). */
  publish: (event: SluiceEvent<'degrade.changed'>) => Promise<void>;
  /** Writes the state after a change to the control bucket. */
  persist: (state: DegraderState, reason: string) => Promise<void>;
  log: Logger;
  now?: () => number;
  /**
   * Whether this replica holds the lease (lease-kv.ts). A follower keeps its window warm and
   * decides nothing. Unset: always (one replica, the tests of the core).
   */
  leading?: () => boolean;
  /** The record as the last leader left it, read when this replica starts to lead. */
  restore?: () => Promise<DegradeState | undefined>;
}

export interface DegraderLoop {
  /** Records an upstream attempt; counted at the next step. */
  attempt(sample: Sample): void;
  /** Applies a signal and decides at once (circuits, override: rare and worth reacting to now). */
  signal(signal: Signal): void;
  /** Takes the pending attempts, ages the window, decides, and publishes then persists a change. */
  step(): Promise<void>;
  state(): DegraderState;
}

/**
 * Runs the pure degrader against the clock. Attempts are buffered and folded in once per step,
 * so a busy upstream costs one array copy a second rather than one per attempt. Steps never
 * overlap: a step asked for while one runs is run again after it. A failed publish leaves the
 * state as it was (the next step decides again); a failed write to the bucket is retried at the
 * next step, because the event is already the truth. Only while `leading()` does a step decide;
 * on taking the lead it first restores the record the last leader wrote.
 */
export function createLoop(initial: DegraderState, deps: LoopDeps): DegraderLoop {
  const now = deps.now ?? Date.now;
  let state = initial;
  let pending: Sample[] = [];
  let running = false;
  let again = false;
  let unpersisted: string | undefined;
  let led = false;
  const leading = deps.leading ?? (() => true);

  const once = async () => {
    const at = now();
    const config = deps.config();
    state = evolve(state, { kind: 'attempts', samples: pending });
    pending = [];
    state = evolve(state, { kind: 'tick', windowStart: at - config.degrader.windowMs });
    if (!leading()) {
      // the next leader restores what the last one wrote; a change left unwritten is decided again there
      led = false;
      unpersisted = undefined;
      return;
    }
    if (!led) {
      // took over: the level, its since and the override are the record's, not what this replica last saw
      const restored = await deps.restore?.();
      if (restored) state = evolve(state, { kind: 'restored', state: restored });
      led = true;
    }
    if (unpersisted !== undefined) {
      await deps.persist(state, unpersisted);
      unpersisted = undefined;
    }
    const event = decide(state, config, at);
    // the lease may have run out while restoring or persisting: only a leader publishes
    if (!event || !leading()) return;
    await deps.publish(event);
    state = evolve(state, { kind: 'changed', event });
    deps.log.info(
      { from: event.data.from, to: event.data.to, manual: event.data.manual, signals: event.data.signals, causes: event.data.causes, reason: event.reason },
      'degrade level changed',
    );
    unpersisted = event.reason;
    await deps.persist(state, event.reason);
    unpersisted = undefined;
  };

  const step = async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        await once().catch((err: unknown) => deps.log.error({ err }, 'degrader step failed; deciding again at the next tick'));
      } while (again);
    } finally {
      running = false;
    }
  };

  return {
    attempt: (sample) => void pending.push(sample),
    signal: (signal) => {
      state = evolve(state, signal);
      void step();
    },
    step,
    state: () => state,
  };
}
