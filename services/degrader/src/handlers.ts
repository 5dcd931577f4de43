import { NOTHING, type Decided, type Received } from '@sluice/bus';
import type { Consumers } from '@sluice/contracts';
import type { DegraderLoop } from './loop.js';

type Attempts = typeof Consumers.degraderInvoke;
type Circuits = typeof Consumers.degraderCircuit;

/**
 * An upstream status that says the request itself was wrong (400 `context_length_exceeded`, 404,
 * 422...): the upstream is healthy, so it is no failure of the service. 401/403 (the
 * deployment's key), 408, 409 and 429 are the upstream's trouble and count.
 */
export function isRequestRefusal(status: number | undefined): boolean {
  return status !== undefined && status >= 400 && status < 500 && ![401, 403, 408, 409, 429].includes(status);
}

/** invoke.attempted -> a sample for the loop's next step (acked once in memory; no event). */
export function onInvokeAttempted(loop: DegraderLoop) {
  return async (event: Received<Attempts>): Promise<Decided<never>> => {
    const { ok, status, latencyMs } = event.data;
    loop.attempt({ at: event.at, ok: ok || isRequestRefusal(status), latencyMs });
    return NOTHING;
  };
}

/** circuit.opened / circuit.closed -> a signal the loop decides on at once (no event). */
export function onCircuitChanged(loop: DegraderLoop) {
  return async (event: Received<Circuits>): Promise<Decided<never>> => {
    if (event.type === 'circuit.opened')
      loop.signal({ kind: 'circuitOpened', deployment: event.data.deployment, at: event.at, openForMs: event.data.openForMs });
    else loop.signal({ kind: 'circuitClosed', deployment: event.data.deployment, at: event.at });
    return NOTHING;
  };
}

/** The operator's override from the `degrade` key (`watchOverride`) -> a signal, when it changed. */
export function onOverride(loop: DegraderLoop) {
  return (override: number | undefined): void => {
    if (override !== loop.state().override) loop.signal({ kind: 'override', override });
  };
}
