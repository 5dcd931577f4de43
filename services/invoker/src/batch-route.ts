import { makeEvent, ServiceName, type AnyEvent, type SluiceConfig } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import type { Arrival, Invoke } from './invoke.js';
import { mayHaveAnswer } from './replay.js';
import type { ResultStore } from './results.js';
import { upstreamBatchCandidate } from './upstream-batch.js';
import type { LineRecorder } from './upstream-batch-store.js';

export interface BatchRouteDeps {
  config: () => SluiceConfig;
  lines: LineRecorder;
  results: ResultStore;
  publish: (event: AnyEvent, delivery: Arrival) => Promise<unknown>;
  log: Logger;
  now?: () => number;
}

/**
 * The invoker's routing of batch lines: a line of a Sluice batch whose model has a deployment
 * with `batchApi` (`upstreamBatchCandidate`) is not called; it is recorded for the upstream's
 * Batch API (`line.<requestId>` in `sluice_upstream_batches`, created once), its decision
 * published as `upstream_batch.queued`, and its chat.routed acked. The upstream-batch runner
 * answers it later, exactly as `invoke` would have (upstream-batch-runner.ts). Every other
 * request, and a redelivered line that already has a stored answer (replayed), goes to `invoke`.
 */
export function routeBatchLines(deps: BatchRouteDeps, invoke: Invoke): Invoke {
  const now = deps.now ?? Date.now;
  return async (event, delivery = {}) => {
    const candidate = upstreamBatchCandidate(event, deps.config());
    if (candidate === undefined) return invoke(event, delivery);
    if (mayHaveAnswer(delivery) && (await deps.results.get(event.requestId).catch(() => undefined))) return invoke(event, delivery);
    const { batch } = event.data.ctx;
    await deps.lines.record({ event: { ...event, data: { ...event.data, candidates: [candidate] } }, recordedAt: now() });
    const reason = `${candidate.deployment} takes batches (batchApi): line ${batch!.customId} of ${batch!.id} goes in an upstream batch, not called`;
    const fields = { requestId: event.requestId, tenant: event.tenant, service: ServiceName.Invoker, at: now(), reason };
    await deps.publish(makeEvent('upstream_batch.queued', fields, { batchId: batch!.id, customId: batch!.customId, ...candidate }), delivery);
    deps.log.debug({ requestId: event.requestId, deployment: candidate.deployment }, 'batch line queued for the upstream Batch API');
  };
}
