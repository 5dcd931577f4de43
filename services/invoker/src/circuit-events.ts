import { makeEvent, ServiceName, SYSTEM_TENANT, type AnyEvent } from '@sluice/contracts';
import type { Circuit, Transition } from './circuit.js';

/**
 * circuit.opened / circuit.half_opened / circuit.closed / deployment.paused: the deployment's,
 * not the request's, so under tenant `_system` with an id of its own
 * (`circuit-<deployment>-<transitions>-<epoch ms>`). Only the replica whose compare-and-set made
 * the transition publishes it, so each goes out once.
 */
export function circuitEvent(deployment: string, circuit: Circuit, t: Transition, requestId: string, at: number): AnyEvent {
  const id = `circuit-${deployment}-${circuit.transitions}-${at}`;
  const fields = { requestId: id, tenant: SYSTEM_TENANT, service: ServiceName.Invoker, at };
  switch (t.to) {
    case 'opened': {
      const reason = `${t.failures} consecutive failures (last in request ${requestId}); calls skip ${deployment} for ${t.openForMs} ms`;
      return makeEvent('circuit.opened', { ...fields, reason }, { deployment, failures: t.failures, openForMs: t.openForMs });
    }
    case 'half-opened':
      return makeEvent('circuit.half_opened', { ...fields, reason: `open time over; request ${requestId} takes a trial call` }, { deployment });
    case 'closed': {
      const reason =
        t.successes === 1 ? `trial call in request ${requestId} succeeded` : `${t.successes} trial calls succeeded, the last in request ${requestId}`;
      return makeEvent('circuit.closed', { ...fields, reason }, { deployment });
    }
    case 'paused': {
      const reason = `upstream answered request ${requestId} with 429 and Retry-After ${t.retryAfterMs} ms; every replica leaves ${deployment} alone until then (not a failure)`;
      return makeEvent('deployment.paused', { ...fields, reason }, { deployment, retryAfterMs: t.retryAfterMs, until: t.until });
    }
    default: {
      const _exhaustive: never = t;
      return _exhaustive;
    }
  }
}
