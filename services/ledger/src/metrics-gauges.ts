import { sql } from 'kysely';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { KV, KvEntry } from '@nats-io/kv';
import { decodeJson, followBucket } from '@sluice/bus';
import type { Logger } from '@sluice/telemetry';
import type { Db } from './db.js';

// What the ledger's gauges read when they are collected: the circuits (followed into memory), each
// durable's backlog (the JetStream API) and the budgets' use (the projection).

/** `sluice.circuit.state` values. */
const CircuitState = { closed: 0, 'half-open': 1, open: 2 } as const;

/** The circuits of `sluice_circuits` as their states, kept current by a watch of the bucket. */
export interface CircuitStates {
  /** Every deployment the bucket has had a record for, with its state's value (a deleted record is closed). */
  states(): ReadonlyMap<string, number>;
  stop(): void;
}

/**
 * Follows `sluice_circuits` (one record per deployment, written by the invokers:
 * services/invoker/src/circuit-store.ts). Only the record's `state` is read; a record without a
 * known state is taken as closed, as the invokers take it.
 */
export async function followCircuits(kv: KV, log: Logger): Promise<CircuitStates> {
  const states = new Map<string, number>();
  const stateOf = (e: KvEntry): number => {
    if (e.operation !== 'PUT' || e.length === 0) return CircuitState.closed;
    try {
      const state = decodeJson<{ state?: unknown }>(e.value)?.state;
      return typeof state === 'string' && Object.hasOwn(CircuitState, state) ? CircuitState[state as keyof typeof CircuitState] : CircuitState.closed;
    } catch {
      return CircuitState.closed;
    }
  };
  const followed = await followBucket(kv, (e) => states.set(e.key, stateOf(e)), { log, what: 'circuits (for the ledger metrics)', loadTimeoutMs: 5_000 });
  return { states: () => states, stop: () => followed.stop() };
}

/** One durable's backlog, from its consumer info. */
export interface ConsumerBacklog {
  stream: string;
  durable: string;
  /** Messages matching its filter not yet delivered (`num_pending`). */
  pending: number;
  /** Delivered and not yet acked (`num_ack_pending`). */
  ackPending: number;
}

/** Every durable of the streams and its backlog: one consumer list request a stream (paged by 256). */
export async function consumerBacklogs(jsm: JetStreamManager, streams: readonly string[]): Promise<ConsumerBacklog[]> {
  const out: ConsumerBacklog[] = [];
  for (const stream of streams) {
    try {
      for await (const c of jsm.consumers.list(stream)) {
        if (c.config.durable_name) out.push({ stream, durable: c.config.durable_name, pending: c.num_pending, ackPending: c.num_ack_pending });
      }
    } catch {
      // a stream not created (yet) has no consumers
    }
  }
  return out;
}

/** A budget's use in its current window. */
export interface BudgetUse {
  tenant: string;
  budget: string;
  /** spent ÷ limit; for a budget counted per user, feature or key, the highest of its counters. */
  utilization: number;
}

/**
 * The budgets with spend in a window that has not reset at `now` (epoch ms), from the ledger's
 * exact counters (`budget_counters`: spent nano-USD against the limit the counter was opened
 * with). A budget appears once a request has counted against it in its current window.
 */
export async function budgetUse(db: Db, now: number): Promise<BudgetUse[]> {
  const rows = await db
    .selectFrom('budget_counters')
    .select(['tenant', 'spent_nanos', sql<string>`budget->>'budget'`.as('budget'), sql<string>`budget->>'limitNanos'`.as('limit_nanos')])
    .where('budget', 'is not', null)
    .where(sql<boolean>`(budget->>'resetsAt')::bigint > ${now}`)
    .execute();
  const byBudget = new Map<string, BudgetUse>();
  for (const r of rows) {
    const utilization = Number(r.spent_nanos) / Number(r.limit_nanos);
    const key = `${r.tenant}\u0000${r.budget}`;
    const prev = byBudget.get(key);
    if (!prev || utilization > prev.utilization) byBudget.set(key, { tenant: r.tenant, budget: r.budget, utilization });
  }
  return [...byBudget.values()];
}
