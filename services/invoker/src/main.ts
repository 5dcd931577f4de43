import { consumeEvents, runService } from '@sluice/bus';
import { Consumers, ServiceName } from '@sluice/contracts';
import { onChatRouted, wireInvoker } from './service.js';

// invoker: chat.routed -> invoke.attempted / invoke.failed per upstream attempt,
// circuit.opened / circuit.closed, then chat.completed | chat.failed (+ the reply to ctx.replyTo).
// Each terminal answer is stored in sluice_results, so a redelivery re-sends it instead of calling again.
await runService(ServiceName.Invoker, async ({ bus, buckets, control, log, env }) => [
  await consumeEvents(bus, {
    consumer: Consumers.invoker,
    // read once: max_ack_pending is a consumer setting, applied when the service starts
    concurrency: control.config().invoker.concurrency,
    // no failPastDeadline: the invoker checks deadlines itself, after its stored-answer check
    log,
    // the one handler that publishes by itself (attempts, circuits, chunks as they happen)
    handler: onChatRouted(wireInvoker({ bus, buckets, control, log, env })),
  }),
]);
