import { runService } from '@sluice/bus';
import { laneSpecs, ServiceName } from '@sluice/contracts';
import { dropLegacyInvoker, startLanes } from './lanes.js';
import { onChatRouted, wireInvoker } from './service.js';
import { startUpstreamBatches } from './upstream-batch-runner.js';

// invoker: chat.routed (one durable per lane, invoker-<lane>) -> invoke.attempted / invoke.failed
// per upstream attempt, circuit.opened / circuit.half_opened / circuit.closed / deployment.paused
// (each by the replica whose compare-and-set on sluice_circuits made it), then chat.completed | chat.failed |
// chat.cancelled (+ the reply to ctx.replyTo). A scheduler shares this replica's upstream slots
// among the lanes by priority and share (lanes.ts). It reads each request's body from its
// chat.requested (by ctx.requestSeq) and hears the clients' cancels on sluice.cancel.* (core
// NATS). Each terminal answer is stored in sluice_results, so a redelivery re-sends it instead
// of calling again. A batch line for a deployment with batchApi is recorded in sluice_upstream_batches
// (upstream_batch.queued) and answered, with the same events and reply, from an upstream batch that one
// replica (a lease in sluice_leases) builds, uploads, creates, polls and reads (upstream_batch.submitted /
// upstream_batch.completed).
// Metrics: /metrics on SLUICE_METRICS_PORT (9474 under npm start; runService): each upstream call is
// gen_ai.client.* points and a `chat {model}` client span (genai.ts, docs/metrics.md).
await runService(ServiceName.Invoker, async ({ bus, buckets, control, log, env }) => {
  const invoker = wireInvoker({ bus, buckets, control, log, env });
  // the circuits other replicas opened are known before the first request is taken
  await invoker.ready;
  await dropLegacyInvoker(bus, log);
  const lanes = await startLanes(bus, {
    // read live: slots and lane shares change with the config, no restart
    settings: () => ({ slots: control.config().invoker.concurrency, lanes: laneSpecs(control.config()) }),
    onChange: (listener) => control.onChange(listener),
    log,
    // the one handler that publishes by itself (attempts, circuits, chunks as they happen)
    handler: onChatRouted(invoker.invoke),
  });
  // batch lines recorded for deployments with batchApi, sent through the upstream's Batch API (one replica at a time)
  const upstreamBatches = await startUpstreamBatches({ bus, buckets, control, log, env });
  // closed in reverse: the upstream batches' lease is handed back, the lanes stop (held messages go back, in-flight requests finish), then the cancels
  return [() => invoker.stop(), lanes, upstreamBatches];
});
