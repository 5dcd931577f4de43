import { consumeEvents, runService } from '@sluice/bus';
import { Consumers, ServiceName } from '@sluice/contracts';
import { onChatRouted, wireInvoker } from './service.js';

// invoker: chat.routed -> invoke.attempted / invoke.failed per upstream attempt,
// circuit.opened / circuit.closed, then chat.completed | chat.failed | chat.cancelled (+ the reply
// to ctx.replyTo). It reads each request's body from its chat.requested (by ctx.requestSeq) and
// hears the clients' cancels on sluice.cancel.* (core NATS). Each terminal answer is stored in
// sluice_results, so a redelivery re-sends it instead of calling again.
await runService(ServiceName.Invoker, async ({ bus, buckets, control, log, env }) => {
  const invoker = wireInvoker({ bus, buckets, control, log, env });
  const consumption = await consumeEvents(bus, {
    consumer: Consumers.invoker,
    // read once: max_ack_pending is a consumer setting, applied when the service starts
    concurrency: control.config().invoker.concurrency,
    // no failPastDeadline: the invoker checks deadlines itself, after its stored-answer check
    log,
    // the one handler that publishes by itself (attempts, circuits, chunks as they happen)
    handler: onChatRouted(invoker.invoke),
  });
  // closed in reverse: the consumer stops (in-flight requests finish), then the cancels
  return [() => invoker.stop(), consumption];
});
