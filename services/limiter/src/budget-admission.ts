import {
  budgetsFor,
  EventType,
  makeEvent,
  Errors,
  type BudgetRef,
  type ChatErrorReply,
  type RequestContext,
  type Reservation,
  type SluiceConfig,
  type SluiceEvent,
} from '@sluice/contracts';
import { checkBudgets, counterOf, type BudgetVerdict, type Refusal } from './budget-check.js';
import { estimateCostNanos } from './cost.js';
import type { BudgetCounters } from './counters.js';

/** An event's envelope fields, as `makeEvent` takes them. */
type EventMeta = Parameters<typeof makeEvent>[1];

/** A request's budgets and the read-only verdict on them, before the rate limits are decided. */
export interface BudgetPlan {
  refs: BudgetRef[];
  verdict: BudgetVerdict;
}

/**
 * The budgets a request counts against and whether it fits them, from the counters as last known
 * (no write). Undefined when it has no budget, or names a model the config does not have (the
 * router refuses it: it costs nothing, and nothing is reserved).
 */
export async function planBudgets(
  counters: BudgetCounters,
  config: SluiceConfig,
  tenant: string,
  ctx: RequestContext,
  now: number,
): Promise<BudgetPlan | undefined> {
  const { request } = ctx;
  const refs = budgetsFor(config, { tenant, user: request.user, feature: request.feature, key: ctx.key }, now);
  if (refs.length === 0) return undefined;
  const full = estimateCostNanos(config, request);
  if (full === undefined) return undefined;
  const states = await Promise.all(refs.map((ref) => counters.state(ref)));
  const verdict = checkBudgets(
    refs,
    (ref) => states[refs.indexOf(ref)]!,
    (downgraded) => (downgraded ? estimateCostNanos(config, request, true)! : full),
    now,
  );
  return { refs, verdict };
}

/** What chat.admitted says of the reservation: the counters it is on and the estimate. */
export function reservationOf(plan: BudgetPlan): Reservation {
  return { counters: plan.refs.map(counterOf), reservedNanos: plan.verdict.estimateNanos };
}

/**
 * chat.rejected (429 `insufficient_quota`) for a spent budget, with `retryAfterMs` until the
 * budget resets: a terminal event, so the ledger counts the request as rejected.
 */
export function budgetRejection(meta: EventMeta, ctx: RequestContext, spent: Refusal): SluiceEvent<'chat.rejected'> {
  const { status } = Errors.insufficient_quota;
  const data = {
    code: 'insufficient_quota' as const,
    status,
    message: spent.message,
    stage: meta.service,
    model: ctx.request.model,
    retryAfterMs: spent.retryAfterMs,
    receivedAt: ctx.receivedAt,
    ...(ctx.request.user !== undefined ? { user: ctx.request.user } : {}),
    ...(ctx.replyTo !== undefined ? { replyTo: ctx.replyTo } : {}),
  };
  return makeEvent(EventType.ChatRejected, meta, data);
}

/** The client's 429 for a budget refusal, from the event alone (a redelivery answers the same). */
export function rejectionReply(e: SluiceEvent<'chat.rejected'>): ChatErrorReply {
  const { code, message, status, retryAfterMs } = e.data;
  return { requestId: e.requestId, error: { code, message, status, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) } };
}
