import { consumeEvents, runService } from '@sluice/bus';
import { Consumers, ServiceName } from '@sluice/contracts';
import { onCacheMissed } from './handler.js';

// router: cache.missed -> chat.routed | chat.shed (terminal) | chat.completed (static fallback,
// terminal). Tiers, models and the degrade level are read live from the control bucket.
await runService(ServiceName.Router, async ({ bus, control, log }) => [
  await consumeEvents(bus, {
    consumer: Consumers.router,
    concurrency: 256,
    // a request nobody waits for any more ends here (chat.failed) instead of going on
    failPastDeadline: true,
    log,
    handler: onCacheMissed({ control, log, bus }),
  }),
]);
