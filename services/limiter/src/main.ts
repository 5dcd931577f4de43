import { consumeEvents, runService } from '@sluice/bus';
import { Consumers, ServiceName } from '@sluice/contracts';
import { onChatCompleted, onChatRequested } from './handlers.js';
import { LimitStore } from './store.js';
import { serviceLeases } from './leases.js';
import { streamDecisions } from './decided.js';
import { BudgetCounters } from './counters.js';
import { AdaptiveLimits } from './adaptive-feed.js';

// limiter: chat.requested -> chat.admitted (with the budgets' reservation) | chat.throttled (terminal,
// 429 with retry-after) | chat.rejected (terminal, a spent budget: 429 insufficient_quota);
// chat.completed, chat.cancelled -> token buckets charged the actual usage minus the estimate;
// upstream.limits_observed (every one, each replica) -> the global limit learned from the upstreams.
// Metrics: /metrics on SLUICE_METRICS_PORT (9473 under npm start; runService, docs/metrics.md).
await runService(ServiceName.Limiter, async ({ bus, buckets, control, log }) => {
  // leased blocks of 1% of a bucket's per-minute requests, spent for at most 0.6 s: most admissions
  // need no KV round trip (a burst may exceed a full bucket by 1%, see leases.ts)
  const store = new LimitStore(buckets.limits, { log, lease: serviceLeases });
  // budget spend (the ledger's) and reservations (the replicas'), kept current by a watch of sluice_budgets
  const budgets = new BudgetCounters(buckets.budgets, { log });
  await budgets.start();
  // an ordered consumer of its own: every replica folds every observation (adaptive-feed.ts)
  const adaptive = new AdaptiveLimits(control, log);
  await adaptive.start(bus.js);
  const deps = { store, control, log, budgets, adaptive, decided: streamDecisions(bus.js) };
  const admission = await consumeEvents(bus, {
    consumer: Consumers.limiter,
    concurrency: 256,
    // past its deadline: the handler ends it, after looking for a redelivery's earlier decision
    log,
    handler: onChatRequested(deps),
  });
  const reconcile = await consumeEvents(bus, {
    consumer: Consumers.limiterReconcile,
    concurrency: 128,
    // a completion's charge can wait: batched pulls instead of a wake-up per completed request
    lingerMs: 200,
    log,
    handler: onChatCompleted(deps),
  });
  const reconcileCancelled = await consumeEvents(bus, {
    consumer: Consumers.limiterReconcileCancelled,
    concurrency: 16,
    lingerMs: 200,
    log,
    handler: onChatCompleted(deps),
  });
  // closed last: consumers stop first, then the leases go back to their buckets
  return [() => store.close(), () => budgets.stop(), () => adaptive.stop(), admission, reconcile, reconcileCancelled];
});
