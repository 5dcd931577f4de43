import { decided, NOTHING, pastDeadline, type Control, type Decided, type Delivery, type Emitted, type Received } from '@sluice/bus';
import {
  Consumers,
  EventType,
  makeEvent,
  ServiceName,
  type ChatErrorReply,
  type RequestContext,
  type RequestKey,
  type SluiceConfig,
  type SluiceEvent,
  type Tenant,
} from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import { bucketState, estimateTokens, rateLimitState } from './estimate.js';
import { admitReason, layersOf, throttleReason, type Layer, type LayerRate, type Limits, type Throttled } from './limiter.js';
import type { AdaptiveLimits } from './adaptive-feed.js';
import { limitKeys, type LimitStore } from './store.js';
import type { FindDecision } from './decided.js';
import type { BudgetCounters } from './counters.js';
import { budgetRejection, planBudgets, rejectionReply, reservationOf } from './budget-admission.js';
import { refusalOf } from './budget-check.js';

type Admission = typeof Consumers.limiter;
type Reconcile = typeof Consumers.limiterReconcile | typeof Consumers.limiterReconcileCancelled;

export interface LimiterDeps {
  store: LimitStore;
  control: Control;
  log: Logger;
  /** The decision a redelivered request already has in the stream (decided.ts); unset: none looked for. */
  decided?: FindDecision;
  /** Budget counters in `sluice_budgets` (counters.ts); unset: budgets are not enforced. */
  budgets?: BudgetCounters;
  /** The global limit learned from the upstreams (adaptive-feed.ts); unset: `limits.global` as configured. */
  adaptive?: Pick<AdaptiveLimits, 'rate'>;
  now?: () => number;
}

const tenantIndex = new WeakMap<SluiceConfig, Map<string, Tenant>>();

/**
 * The limits that apply to a request under `config`: the tenant's (or `limits.tenantDefault`),
 * the user's when it names one (the tenant's `userLimits` or `limits.userDefault`), its virtual
 * key's own, and `global` (default: `limits.global` as configured, nothing learned). The what-if
 * replay runs this same function (whatif-api.ts).
 */
export function limitsFor(
  config: SluiceConfig,
  tenantId: string,
  user: string | undefined,
  key?: RequestKey,
  global: LayerRate = config.limits.global,
): Limits {
  let index = tenantIndex.get(config);
  if (!index) tenantIndex.set(config, (index = new Map(config.tenants.map((t) => [t.id, t]))));
  const tenant = index.get(tenantId);
  const limits: Limits = { tenant: tenant?.limits ?? config.limits.tenantDefault, global };
  if (user !== undefined) limits.user = tenant?.userLimits ?? config.limits.userDefault;
  if (key?.limits) limits.key = key.limits;
  return limits;
}

/**
 * chat.requested -> chat.admitted | chat.throttled | chat.rejected (a spent budget) | chat.failed
 * (past its deadline). A throttle or a refusal ends the request: the event comes with the
 * client's 429, sent once it is stored.
 *
 * The order: the budgets are checked first (read only: a spent budget debits no rate limit),
 * then the rate limits decide and debit, then the estimated cost is reserved on every budget
 * (compare-and-set). A budget another replica filled meanwhile refuses at that write, and the
 * rate limits get their debit back.
 */
export function onChatRequested(deps: LimiterDeps) {
  const now = deps.now ?? Date.now;
  return async (event: Received<Admission>, delivery: Delivery): Promise<Decided<Emitted<Admission>>> => {
    const { ctx } = event.data;
    // a redelivery after a crash between the decision and the ack: the decision stands, and the
    // buckets and budgets were debited for it once already (a crash before the decision was
    // published still debits twice: nothing recorded says the first debit happened)
    let earlier: Awaited<ReturnType<FindDecision>>;
    try {
      earlier = delivery.deliveryCount > 1 ? await deps.decided?.(event, delivery.seq) : undefined;
    } catch (err) {
      // the stream could not be asked: tried again later, unless the deadline has passed, when it
      // ends below (a decision stored meanwhile keeps its outcome: a request's terminal events
      // share one msg id)
      if (!pastDeadline(event, ServiceName.Limiter, now())) throw err;
      deps.log.warn({ err, requestId: event.requestId }, 'could not look for the decision of a redelivered request past its deadline; ending it');
    }
    if (earlier) {
      deps.log.info(
        { requestId: event.requestId, decision: earlier.type, delivery: delivery.deliveryCount },
        'redelivered request was already decided; not debiting it again',
      );
      if (earlier.type === EventType.ChatThrottled) return decided([], [{ to: ctx.replyTo, reply: throttledReply(earlier) }]);
      if (earlier.type === EventType.ChatRejected) return decided([], [{ to: ctx.replyTo, reply: rejectionReply(earlier) }]);
      return NOTHING;
    }
    // a request nobody waits for any more ends here (chat.failed) instead of going on; looked at
    // only after the stream was asked, so a redelivery of a request admitted before its deadline
    // (the ack lost with a node) does not end it a second time while the invoker completes it
    const expired = pastDeadline(event, ServiceName.Limiter, now());
    if (expired) {
      deps.log.warn({ requestId: event.requestId, delivery: delivery.deliveryCount }, 'request past its deadline; ended it');
      return decided([expired.event], [{ to: expired.replyTo, reply: expired.reply }]);
    }
    const config = deps.control.config();
    const user = ctx.request.user;
    const fields = { requestId: event.requestId, tenant: event.tenant, service: ServiceName.Limiter, at: now() };
    const budgets = deps.budgets && (await planBudgets(deps.budgets, config, event.tenant, ctx, fields.at));
    if (budgets?.verdict.kind === 'spent') return refused(budgetRejection({ ...fields, reason: budgets.verdict.message }, ctx, budgets.verdict));

    const limits = limitsFor(config, event.tenant, user, ctx.key, deps.adaptive?.rate(config, fields.at));
    const keys = limitKeys(event.tenant, user, ctx.key?.limits ? ctx.key.id : undefined);
    // the prompt was counted once, at ingress (a long one off its event loop)
    const estimatedTokens = estimateTokens(ctx.request);
    const decision = await deps.store.admit(keys, limits, estimatedTokens);

    if (!decision.admitted) {
      const { layer, limit, retryAfterMs } = decision;
      const learned = decision.layer === 'global' && limits.global.note ? `; ${limits.global.note}` : '';
      const reason = throttleReason(decision) + learned;
      const throttled = makeEvent(
        EventType.ChatThrottled,
        { ...fields, reason },
        { layer, limit, retryAfterMs, replyTo: ctx.replyTo, receivedAt: ctx.receivedAt },
      );
      return decided([throttled], [{ to: ctx.replyTo, reply: throttledReply(throttled, decision) }]);
    }

    let reason = admitReason(estimatedTokens, decision.buckets, limits);
    let budgeted: Pick<SluiceEvent<'chat.admitted'>['data'], 'budgets'> = {};
    let downgrade: RequestContext['downgrade'];
    if (budgets && deps.budgets) {
      const { estimateNanos } = budgets.verdict;
      // the request never counted when no reservation is made: its rate-limit debit goes back (not
      // awaited: a change waits for the next admission's write, and the client's answer need not)
      const refund = () =>
        deps.store
          .adjust(keys, limits, layersOf(limits), { requests: 1, tokens: estimatedTokens })
          .catch((err: unknown) => deps.log.warn({ err, requestId: event.requestId }, 'could not refund the rate limits of an unreserved request'));
      const reserved = await deps.budgets.reserve(budgets.refs, estimateNanos).catch((err: unknown) => {
        // KV failed: the redelivery decides again, debiting again unless this is given back
        void refund();
        throw err;
      });
      if (!reserved.reserved) {
        void refund();
        const spent = refusalOf(reserved.spent, reserved.state, estimateNanos, fields.at);
        return refused(budgetRejection({ ...fields, reason: spent.message }, ctx, spent));
      }
      const over = budgets.verdict.kind === 'within' ? (budgets.verdict.downgrade ?? reserved.overDowngrade[0]) : undefined;
      if (over) downgrade = { budget: over.budget };
      budgeted = { budgets: reservationOf(budgets) };
      reason += `; reserved ${estimateNanos} nano-USD on ${budgets.refs.length} budget${budgets.refs.length === 1 ? '' : 's'}`;
      if (over) reason += `; budget ${over.budget} is spent: downgraded to the cheapest tier`;
    }
    // later stages find the body by the sequence of the event that carries it
    const rateLimit = rateLimitState(decision.buckets, limits);
    const admittedCtx = { ...ctx, requestSeq: delivery.seq, ...(rateLimit ? { rateLimit } : {}), ...(downgrade ? { downgrade } : {}) };
    return decided([makeEvent(EventType.ChatAdmitted, { ...fields, reason }, { ctx: admittedCtx, estimatedTokens, ...budgeted })]);
  };
}

/** A budget refusal: the event, and the client's 429 once it is stored. */
function refused(rejected: SluiceEvent<'chat.rejected'>): Decided<Emitted<Admission>> {
  return decided([rejected], [{ to: rejected.data.replyTo, reply: rejectionReply(rejected) }]);
}

/**
 * The 429 a throttled request's client gets, with the refusing bucket's state when the decision
 * is at hand (not for a redelivery answered from the stream's event).
 */
function throttledReply(e: SluiceEvent<'chat.throttled'>, decision?: Throttled): ChatErrorReply {
  const { retryAfterMs } = e.data;
  const reply: ChatErrorReply = {
    requestId: e.requestId,
    error: { code: 'rate_limit_exceeded', message: `Rate limit reached: ${e.reason}.`, status: 429, retryAfterMs },
  };
  if (decision) reply.rateLimit = { [decision.limit]: bucketState(decision.available, decision.capacity) };
  return reply;
}

/**
 * chat.completed | chat.cancelled -> the tenant, key and user token buckets are charged the difference
 * between the tokens actually used (a cancelled request's: what it streamed before the client
 * left) and the estimate admitted (a refund when the answer was shorter).
 * The estimate is recomputed from the request's facts the event carries (`estimateTokens`,
 * no recount of the prompt), so chat.completed needs no extra field. A redelivered chat.completed is charged twice (KV
 * holds no record of which completions were reconciled); redelivery needs a crash between
 * the write and the ack, and the error is one request's difference.
 */
export function onChatCompleted(deps: LimiterDeps) {
  return async (event: Received<Reconcile>): Promise<Decided<Emitted<Reconcile>>> => {
    const { ctx } = event.data;
    const usage = event.type === EventType.ChatCompleted ? event.data.answer.usage : event.data.usage;
    const difference = usage.total_tokens - estimateTokens(ctx.request);
    if (difference === 0) return NOTHING;
    const user = ctx.request.user;
    const limits = limitsFor(deps.control.config(), event.tenant, user, ctx.key);
    // the global layer models the upstream's own limit and is the hot key: left to refill
    const layers: Layer[] = layersOf(limits).filter((l) => l !== 'global');
    await deps.store.adjust(limitKeys(event.tenant, user, ctx.key?.limits ? ctx.key.id : undefined), limits, layers, { tokens: -difference });
    deps.log.debug({ requestId: event.requestId, difference }, 'usage reconciled');
    return NOTHING;
  };
}
