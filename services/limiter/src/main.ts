import { consumeEvents, runService } from '@sluice/bus';
import { EventType, ServiceName, Subjects, Topology } from '@sluice/contracts';
import { onChatCompleted, onChatRequested } from './handlers.js';
import { LimitStore } from './store.js';

// limiter: chat.requested -> chat.admitted | chat.throttled (terminal, 429 with retry-after);
// chat.completed -> token buckets charged the actual usage minus the estimate.
await runService(ServiceName.Limiter, async ({ bus, buckets, control, log }) => {
  const store = new LimitStore(buckets.limits, { log });
  const deps = { bus, store, control, log };
  const admission = await consumeEvents(bus, {
    durable: Topology.consumers.limiter,
    filter: Subjects.eventsOf(EventType.ChatRequested),
    concurrency: 256,
    log,
    handler: onChatRequested(deps),
  });
  const reconcile = await consumeEvents(bus, {
    durable: Topology.consumers.limiterReconcile,
    filter: Subjects.eventsOf(EventType.ChatCompleted),
    concurrency: 128,
    log,
    handler: onChatCompleted(deps),
  });
  return [admission, reconcile];
});
