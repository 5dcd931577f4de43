import type { SluiceConfig, SluiceEvent } from '@sluice/contracts';
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
 * next step, because the event is already the truth.
 */
export function createLoop(initial: DegraderState, deps: LoopDeps): DegraderLoop {
  const now = deps.now ?? Date.now;
  let state = initial;
  let pending: Sample[] = [];
  let running = false;
  let again = false;
  let unpersisted: string | undefined;

  const once = async () => {
    const at = now();
    const config = deps.config();
    state = evolve(state, { kind: 'attempts', samples: pending });
    pending = [];
    state = evolve(state, { kind: 'tick', windowStart: at - config.degrader.windowMs });
    if (unpersisted !== undefined) {
      await deps.persist(state, unpersisted);
      unpersisted = undefined;
    }
    const event = decide(state, config, at);
    if (!event) return;
    await deps.publish(event);
    state = evolve(state, { kind: 'changed', event });
    deps.log.info(
      { from: event.data.from, to: event.data.to, manual: event.data.manual, signals: event.data.signals, reason: event.reason },
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
