import type { AnyEvent, Candidate, SluiceConfig, SluiceEvent } from '@sluice/contracts';
import type { Streamed } from './cancels.js';
import type { Circuit, CircuitInput } from './circuit.js';
import type { InvokerSettings } from './plan.js';
import { mayHaveAnswer, type DeliveryCount, type StoredAnswer } from './replay.js';
import type { Failure } from './retry.js';
import type { UpstreamAnswer } from './upstream.js';

/** What stays fixed while one chat.routed is invoked: the input and what was read at its start. */
export interface Invocation {
  event: SluiceEvent<'chat.routed'>;
  delivery: DeliveryCount;
  settings: InvokerSettings;
  deployments: SluiceConfig['deployments'];
  /**
   * The config's models, read with the deployments: chat.completed and chat.cancelled record the
   * answering model's price from them (`billedPrice`), which the ledger bills. Absent: no price is
   * recorded, and the ledger bills at its own config when it projects the event.
   */
  models?: SluiceConfig['models'];
  /** The NATS server's max_payload in bytes: the answer is cut to fit it (fit.ts). */
  maxPayload: number;
  /** Backoff jitter in [0, 1) (Math.random in production, fixed in tests). */
  random: () => number;
  /**
   * ms the request waited in its lane: from chat.routed's `at` to the invoker taking it. On the
   * first attempt's event, chat.completed and the client's answer (`x-sluice-queue-ms`).
   */
  queuedMs?: number;
}

/** Where the attempt loop of one request stands between two steps. */
export interface AttemptState {
  /** The candidate being tried (index into `candidates`). */
  index: number;
  /** Attempts made on that candidate. */
  onCandidate: number;
  /** Attempts made in all, which is also the number of the last one. */
  attempts: number;
  /** The last failure, quoted when the request fails for want of candidates. */
  last?: Failure;
  /** What has no event of its own (a skipped candidate, a fallback): prefixed to the next event's reason. */
  notes: readonly string[];
  /**
   * This replica's circuits of the request's deployments when the step runs (missing = closed).
   * The interpreter refreshes it from the shared map before every step, since other requests
   * change the circuits while a call runs.
   */
  circuits: Readonly<Record<string, Circuit>>;
  /** The half-open trial slot the running call holds (`<requestId>:<attempt suffix>`), if it is a trial. */
  trial?: string | undefined;
}

/**
 * What happened since the last step: nothing yet, a wait, the upstream call's result, or the
 * client's cancel. `sent` lists what Sluice changed in the body it sent (outgoing.ts).
 */
export type AttemptOutcome =
  | { kind: 'start' }
  | { kind: 'waited' }
  | { kind: 'answered'; answer: UpstreamAnswer; latencyMs: number; sent?: readonly string[] }
  | { kind: 'failed'; failure: Failure; latencyMs: number; sent?: readonly string[] }
  /** `streamed` is what the running call had sent the client; undefined when no call was running. */
  | { kind: 'cancelled'; streamed?: Streamed; latencyMs?: number }
  /** The call's half-open trial slot was taken by another replica before this one could claim it: no call was made. */
  | { kind: 'refused'; reason: string };

/** What the interpreter does next. */
export type Next =
  /**
   * Call this candidate; the attempt's events carry `suffix` in their ids. With `trial`, first
   * claim that half-open trial slot (`decide(c, { kind: 'trial', trial })`); step again with
   * `refused` when the claim loses.
   */
  | { kind: 'call'; candidate: Candidate; attempt: number; suffix: string | number; trial?: string }
  /** Sleep, then step again with `{ kind: 'waited' }`. */
  | { kind: 'wait'; ms: number }
  /** Publish the terminal event once the step events are in the stream, then reply (if anyone listens) and store. */
  | { kind: 'conclude'; terminal: StoredAnswer['event']; reply: StoredAnswer['result'] };

/** One input to one deployment's circuit. */
export interface CircuitChange {
  deployment: string;
  input: CircuitInput;
}

/** One step of the attempt loop. */
export interface Step {
  state: AttemptState;
  /** Attempt and circuit events to publish in this order (the terminal event is in `next`). */
  events: AnyEvent[];
  /** What the calls told of their deployments, in order: the interpreter applies each to the shared circuit (`decide`, by compare-and-set). */
  circuits: CircuitChange[];
  next: Next;
}

/** The state before the first attempt; a redelivery says so on the first event. */
export function startAttempts(inv: Invocation): AttemptState {
  const { delivery } = inv;
  const notes = mayHaveAnswer(delivery) ? [`delivery ${delivery.deliveryCount}: no stored answer, calling the upstream again`] : [];
  return { index: 0, onCandidate: 0, attempts: 0, notes, circuits: {} };
}
