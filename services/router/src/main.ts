import { consumeEvents, runService } from '@sluice/bus';
import { Consumers, ServiceName } from '@sluice/contracts';
import { onCacheMissed, onHeldReleased } from './handler.js';
import { releaseHeld } from './held.js';

// router: cache.missed -> chat.routed | chat.shed (terminal) | chat.completed (static fallback,
// terminal) | chat.held (level 4). Tiers, models and the degrade level are read live from the
// control bucket. chat.held -> chat.routed | chat.shed once the level is below 2, in order.
// Metrics: /metrics on SLUICE_METRICS_PORT (9471 under npm start; runService, docs/metrics.md).
await runService(ServiceName.Router, async ({ bus, control, log }) => [
  await consumeEvents(bus, {
    consumer: Consumers.router,
    concurrency: 256,
    // a request nobody waits for any more ends here (chat.failed) instead of going on
    failPastDeadline: true,
    log,
    handler: onCacheMissed({ control, log, bus }),
  }),
  await releaseHeld(bus, control, log, onHeldReleased({ control, log })),
]);
