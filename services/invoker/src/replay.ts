import { eventProblem, isChunk, replyProblem, type ChatErrorReply, type ChatReply, type ChatResult, type SluiceEvent } from '@sluice/contracts';

/**
 * The terminal answer of a request, kept in `sluice_results` under `<requestId>` (bucket TTL 1 h)
 * once its terminal event is in the stream, so a redelivered chat.routed is answered from here
 * instead of calling the upstream again. `event` is the terminal event as published, so a replay
 * re-publishes it under the same id.
 */
export interface StoredAnswer {
  requestId: string;
  tenant: string;
  result: ChatResult | ChatErrorReply;
  /** Epoch ms: the terminal event's `at`. */
  completedAt: number;
  event: SluiceEvent<'chat.completed'> | SluiceEvent<'chat.failed'> | SluiceEvent<'chat.cancelled'>;
}

/** The invoker's terminal events: the ones a stored answer may hold. */
const TERMINAL: ReadonlySet<string> = new Set(['chat.completed', 'chat.failed', 'chat.cancelled']);

/** The part of a delivery these decisions read (consumeEvents' `Delivery` has it). */
export interface DeliveryCount {
  /** 1 on the first delivery. */
  deliveryCount?: number;
}

/**
 * Only a redelivery can find a stored answer: the first delivery of a request must not pay a
 * KV read on the hot path.
 */
export function mayHaveAnswer(delivery: DeliveryCount): boolean {
  return (delivery.deliveryCount ?? 1) > 1;
}

/**
 * A stored answer read back from `sluice_results`, or undefined when it does not have the shape
 * this invoker writes (an older format, a damaged entry): then the redelivery calls the upstream
 * again (under the same Idempotency-Key) instead of replaying something malformed.
 */
export function asStoredAnswer(value: unknown): StoredAnswer | undefined {
  const v = value as Partial<StoredAnswer> | null;
  if (typeof v?.requestId !== 'string' || typeof v.tenant !== 'string' || typeof v.completedAt !== 'number') return undefined;
  if (eventProblem(v.event) !== undefined || !TERMINAL.has(v.event?.type ?? '')) return undefined;
  return replyProblem(v.result) === undefined && !isChunk(v.result as ChatReply) ? (value as StoredAnswer) : undefined;
}

/**
 * What to do with a chat.routed given what the results bucket holds for it: replay a stored
 * answer (no upstream call), or invoke the upstream. A stored answer is only trusted on a
 * redelivery, the one case where this invoker may already have answered.
 */
export function decideDelivery(stored: StoredAnswer | undefined, delivery: DeliveryCount): 'replay' | 'invoke' {
  return stored !== undefined && mayHaveAnswer(delivery) ? 'replay' : 'invoke';
}

/**
 * The id suffix of attempt events. A redelivery that calls the upstream again numbers its
 * attempts `<delivery>.<attempt>`, so they do not share ids with the attempts of a delivery that
 * died mid-call (the stream would drop them as duplicates); the first delivery keeps `1`, `2`...
 */
export function attemptSuffix(delivery: DeliveryCount, attempt: number): string | number {
  return mayHaveAnswer(delivery) ? `${delivery.deliveryCount}.${attempt}` : attempt;
}
