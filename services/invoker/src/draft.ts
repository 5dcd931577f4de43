import { makeEvent, ServiceName, type AnyEvent, type EventDataOf, type EventType, type SluiceEvent } from '@sluice/contracts';
import type { AttemptState, CircuitChange, Invocation, Next, Step } from './attempts.js';
import { closedCircuit, decide, type Circuit, type CircuitInput } from './circuit.js';

/**
 * The step being built: the state so far, the events in publish order and what the calls told
 * of their deployments' circuits. Local to one call of `step`, so the step stays pure while reading top to bottom.
 */
export class Draft {
  private readonly events: AnyEvent[] = [];
  private readonly changes: CircuitChange[] = [];

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

  /**
   * Hands what a call told of its deployment to the interpreter, which applies it to the shared
   * circuit (and publishes the transition if its write wins). The step's own view follows it, so
   * the rest of this step decides on the circuit as it will most likely be.
   */
  settle(deployment: string, input: CircuitInput): void {
    this.changes.push({ deployment, input });
    const { circuit } = decide(this.circuitOf(deployment), input, this.now, this.inv.settings);
    this.update({ circuits: { ...this.state.circuits, [deployment]: circuit } });
  }

  done(next: Next): Step {
    return { state: this.state, events: this.events, circuits: this.changes, next };
  }
}
