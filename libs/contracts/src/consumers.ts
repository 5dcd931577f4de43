import { EventType, ServiceName } from './events.js';
import { Subjects } from './subjects.js';
import type { Priority } from './spend.js';

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
    emits: [E.CacheHit, E.CacheMissed, E.CacheCoalesced, E.ChatFailed],
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
    // chat.completed: the static answer of degrade level 3; chat.held: level 4
    emits: [E.ChatRouted, E.ChatShed, E.ChatCompleted, E.ChatFailed, E.ChatHeld],
  },
  /**
   * Requests held at degrade level 4, released in stream order once the level is below 2 (a pull
   * consumer the router drives itself: nothing is taken while the gateway is in maintenance).
   */
  routerHeld: {
    durable: 'router-held',
    service: ServiceName.Router,
    filter: Subjects.eventsOf(E.ChatHeld),
    receives: [E.ChatHeld],
    emits: [E.ChatRouted, E.ChatShed],
  },
  /**
   * The degrader folds attempts and circuit changes into its window; its loop emits degrade.changed.
   * Each degrader replica reads these filters with an ordered consumer of its own (every replica
   * must see every attempt; only the lease holder decides: docs/degrader.md). The durable names are
   * those of the shared durables it used before, which it deletes at start.
   */
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
    receives: [E.CircuitOpened, E.CircuitHalfOpened, E.CircuitClosed],
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
    emits: [E.BudgetThresholdCrossed, E.CanaryRolledBack],
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

/**
 * The invoker's consumer of one lane: durable `invoker-<lane>`, filter
 * `sluice.evt.chat.routed.<lane>.*`. nats-server 2.9 has one filter subject per consumer and no
 * priority groups, so each lane is a consumer of its own and the invoker's scheduler pulls from
 * them by priority (services/invoker/src/lanes.ts). The invoker publishes attempts and circuit
 * changes as they happen (a request's retries can take seconds, and the degrader reacts to
 * attempts), through its own Timeline; its handler returns nothing. It is the one handler that
 * publishes by itself.
 */
export function invokerConsumer(lane: Priority) {
  return {
    durable: `invoker-${lane}`,
    service: ServiceName.Invoker,
    filter: Subjects.routedIn(lane),
    receives: [E.ChatRouted],
    emits: [
      E.InvokeAttempted,
      E.InvokeFailed,
      E.CircuitOpened,
      E.CircuitHalfOpened,
      E.CircuitClosed,
      E.DeploymentPaused,
      E.ChatCompleted,
      E.ChatFailed,
      E.ChatCancelled,
      E.UpstreamLimitsObserved,
    ],
  } as const satisfies ConsumerSpec;
}
export type InvokerConsumer = ReturnType<typeof invokerConsumer>;

/**
 * The invoker's one durable before lanes (filter `sluice.evt.chat.routed.*`). The invoker deletes
 * it at start: left alone it would keep its unacked messages and hold a filter no event matches.
 */
export const LEGACY_INVOKER_DURABLE = 'invoker';

/** The event a consumer's handler receives. */
export type ReceivedBy<C extends ConsumerSpec> = C['receives'][number];
/** The events a consumer's handler may decide. */
export type EmittedBy<C extends ConsumerSpec> = C['emits'][number];
