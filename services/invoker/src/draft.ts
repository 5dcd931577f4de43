import { makeEvent, ServiceName, SYSTEM_TENANT, type AnyEvent, type EventDataOf, type EventType, type SluiceEvent } from '@sluice/contracts';
import type { AttemptState, Invocation, Next, Step } from './attempts.js';
import { closedCircuit, type Circuit, type Outcome, type Transition } from './circuit.js';

/**
 * The step being built: the state so far, the events in publish order and the circuits to write
 * back. Local to one call of `step`, so the step stays pure while reading top to bottom.
 */
export class Draft {
  private readonly events: AnyEvent[] = [];
  private readonly writes: Record<string, Circuit> = {};

  constructor(
    readonly inv: Invocation,
    public state: AttemptState,
    readonly now: number,
  ) {}

  update(patch: Partial<AttemptState>): void {
    this.state = { ...this.state, ...patch };
  }

  note(text: string): void {
    this.update({ notes: [...this.state.notes, text] });
  }

  /** An event of this request, at `now`; the notes gathered since the last one prefix its reason. */
  stamp<T extends EventType>(type: T, text: string, data: EventDataOf<T>, suffix?: string | number): SluiceEvent<T> {
    const { requestId, tenant } = this.inv.event;
    const { notes } = this.state;
    const reason = notes.length ? `${notes.join('; ')}; ${text}` : text;
    this.update({ notes: [] });
    return makeEvent(type, { requestId, tenant, service: ServiceName.Invoker, at: this.now, reason, ...(suffix !== undefined ? { suffix } : {}) }, data);
  }

  emit(event: AnyEvent): void {
    this.events.push(event);
  }

  readonly circuitOf = (deployment: string): Circuit => this.state.circuits[deployment] ?? closedCircuit;

  /** Keeps a deployment's next circuit and publishes its transition, if any. */
  settle(deployment: string, outcome: Outcome): void {
    this.writes[deployment] = outcome.circuit;
    this.update({ circuits: { ...this.state.circuits, [deployment]: outcome.circuit } });
    if (outcome.transition) this.emit(circuitEvent(deployment, outcome.circuit, outcome.transition, this.inv.event.requestId, this.now));
  }

  done(next: Next): Step {
    return { state: this.state, events: this.events, circuits: this.writes, next };
  }
}

/**
 * circuit.opened / circuit.closed: the deployment's, not the request's, so under tenant
 * `_system` with an id of its own (`circuit-<deployment>-<transitions>-<epoch ms>`).
 */
function circuitEvent(deployment: string, circuit: Circuit, t: Transition, requestId: string, at: number): AnyEvent {
  const id = `circuit-${deployment}-${circuit.transitions}-${at}`;
  const fields = { requestId: id, tenant: SYSTEM_TENANT, service: ServiceName.Invoker, at };
  if (t.to === 'opened') {
    const reason = `${t.failures} consecutive failures (last in request ${requestId}); calls skip ${deployment} for ${t.openForMs} ms`;
    return makeEvent('circuit.opened', { ...fields, reason }, { deployment, failures: t.failures, openForMs: t.openForMs });
  }
  return makeEvent('circuit.closed', { ...fields, reason: `trial call in request ${requestId} succeeded` }, { deployment });
}
