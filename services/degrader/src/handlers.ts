import { NOTHING, type Decided, type Received } from '@sluice/bus';
import { isRequestRefusal, type Consumers } from '@sluice/contracts';
import type { DegraderLoop } from './loop.js';

type Attempts = typeof Consumers.degraderInvoke;
type Circuits = typeof Consumers.degraderCircuit;

/** invoke.attempted -> a sample for the loop's next step (acked once in memory; no event). */
export function onInvokeAttempted(loop: DegraderLoop) {
  return async (event: Received<Attempts>): Promise<Decided<never>> => {
    const { ok, status, latencyMs } = event.data;
    // the upstream refusing the request itself (isRequestRefusal) is no failure of the service
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
