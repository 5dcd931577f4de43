import { EventType, ServiceName } from './events.js';
import { Subjects } from './subjects.js';

/**
 * One durable consumer: the service it belongs to, the event types it receives (through one
 * filter subject: nats-server 2.9 has one per consumer) and the event types its handler may
 * decide. The bus delivers a handler only what it receives and publishes only what it emits.
 */
export interface ConsumerSpec {
  durable: string;
  service: ServiceName;
  filter: string;
  receives: readonly EventType[];
  emits: readonly EventType[];
}

const E = EventType;

/**
 * The routing table: who consumes what and who emits what, in one place. Every consumer may
 * also park an event it cannot handle (`event.parked`, the bus's own), and the stages before the
 * invoker end a request past its deadline (`chat.failed`).
 */
export const Consumers = {
  limiter: {
    durable: 'limiter',
    service: ServiceName.Limiter,
    filter: Subjects.eventsOf(E.ChatRequested),
    receives: [E.ChatRequested],
    emits: [E.ChatAdmitted, E.ChatThrottled, E.ChatRejected, E.ChatFailed],
  },
  /** chat.completed -> token buckets charged the actual usage minus the estimate (no event). */
  limiterReconcile: {
    durable: 'limiter-reconcile',
    service: ServiceName.Limiter,
    filter: Subjects.eventsOf(E.ChatCompleted),
    receives: [E.ChatCompleted],
    emits: [],
  },
  /** chat.cancelled -> the same reconciliation, for what a cancelled request streamed (no event). */
  limiterReconcileCancelled: {
    durable: 'limiter-reconcile-cancelled',
    service: ServiceName.Limiter,
    filter: Subjects.eventsOf(E.ChatCancelled),
    receives: [E.ChatCancelled],
    emits: [],
  },
  cacheLookup: {
    durable: 'cache-lookup',
    service: ServiceName.Cache,
    filter: Subjects.eventsOf(E.ChatAdmitted),
    receives: [E.ChatAdmitted],
    emits: [E.CacheHit, E.CacheMissed, E.ChatFailed],
  },
  cacheStore: {
    durable: 'cache-store',
    service: ServiceName.Cache,
    filter: Subjects.eventsOf(E.ChatCompleted),
    receives: [E.ChatCompleted],
    emits: [E.CacheStored],
  },
  router: {
    durable: 'router',
    service: ServiceName.Router,
    filter: Subjects.eventsOf(E.CacheMissed),
    receives: [E.CacheMissed],
    // chat.completed: the static answer of degrade level 3
    emits: [E.ChatRouted, E.ChatShed, E.ChatCompleted, E.ChatFailed],
  },
  /**
   * The invoker publishes attempts and circuit changes as they happen (a request's retries can
   * take seconds, and the degrader reacts to attempts), through its own Timeline; its handler
   * returns nothing. It is the one handler that publishes by itself.
   */
  invoker: {
    durable: 'invoker',
    service: ServiceName.Invoker,
    filter: Subjects.eventsOf(E.ChatRouted),
    receives: [E.ChatRouted],
    emits: [E.InvokeAttempted, E.InvokeFailed, E.CircuitOpened, E.CircuitClosed, E.ChatCompleted, E.ChatFailed, E.ChatCancelled, E.UpstreamLimitsObserved],
  },
  /** The degrader folds attempts and circuit changes into its window; its loop emits degrade.changed. */
  degraderInvoke: {
    durable: 'degrader-invoke',
    service: ServiceName.Degrader,
    filter: Subjects.eventsOf(E.InvokeAttempted),
    receives: [E.InvokeAttempted],
    emits: [],
  },
  degraderCircuit: {
    durable: 'degrader-circuit',
    service: ServiceName.Degrader,
    filter: Subjects.family('circuit'),
    receives: [E.CircuitOpened, E.CircuitClosed],
    emits: [],
  },
  /**
   * Every event, projected into Postgres in ordered batches (services/ledger; not consumeEvents).
   * A budget counter crossing a threshold is written to an outbox in the batch's transaction and
   * published from there after commit, so a crash or a replay never loses or repeats an alert.
   */
  ledger: {
    durable: 'ledger',
    service: ServiceName.Ledger,
    filter: Subjects.allEvents,
    receives: Object.values(E),
    emits: [E.BudgetThresholdCrossed],
  },
  /** budget.threshold_crossed -> a signed POST to each configured webhook until it answers 2xx. */
  ledgerAlerts: {
    durable: 'ledger-alerts',
    service: ServiceName.Ledger,
    filter: Subjects.eventsOf(E.BudgetThresholdCrossed),
    receives: [E.BudgetThresholdCrossed],
    emits: [E.AlertDeliveryAttempted],
  },
} as const satisfies Record<string, ConsumerSpec>;

/** The event a consumer's handler receives. */
export type ReceivedBy<C extends ConsumerSpec> = C['receives'][number];
/** The events a consumer's handler may decide. */
export type EmittedBy<C extends ConsumerSpec> = C['emits'][number];
