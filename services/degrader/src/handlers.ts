import { isRequestRefusal, type AnyEvent } from '@sluice/contracts';
import type { DegraderLoop } from './loop.js';

/** invoke.attempted -> a sample for the loop's next step (followed, not acked: follow.ts). */
export function onAttempt(loop: DegraderLoop) {
  return (event: AnyEvent): void => {
    if (event.type !== 'invoke.attempted') return;
    const { ok, status, latencyMs } = event.data;
    // the upstream refusing the request itself (isRequestRefusal) is no failure of the service
    loop.attempt({ at: event.at, ok: ok || isRequestRefusal(status), latencyMs });
  };
}

/**
 * circuit.opened / half_opened / closed -> a signal the loop decides on at once. Half-open counts
 * as not open: trial calls may go, and at level 2 none would if it held the level up.
 */
export function onCircuitEvent(loop: DegraderLoop) {
  return (event: AnyEvent): void => {
    if (event.type === 'circuit.opened')
      loop.signal({ kind: 'circuitOpened', deployment: event.data.deployment, at: event.at, openForMs: event.data.openForMs });
    else if (event.type === 'circuit.closed' || event.type === 'circuit.half_opened')
      loop.signal({ kind: 'circuitClosed', deployment: event.data.deployment, at: event.at });
  };
}

/** The operator's override from the `degrade` key (`watchOverride`) -> a signal, when it changed. */
export function onOverride(loop: DegraderLoop) {
  return (override: number | undefined): void => {
    if (override !== loop.state().override) loop.signal({ kind: 'override', override });
  };
}
