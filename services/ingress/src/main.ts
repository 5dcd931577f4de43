import { runService } from '@sluice/bus';
import { ServiceName } from '@sluice/contracts';
import { warmTokenizer } from '@sluice/facts';
import { startFrontDoors } from './ingress.js';

// ingress: consumes no events; it is where requests come in.
//   listens: NATS `sluice.chat.<tenant>` (queue group `ingress`; the caller's reply subject is
//            ctx.replyTo; header sluice-endpoint picks the API) and HTTP on SLUICE_HOST:SLUICE_INGRESS_PORT
//            (POST /v1/chat/completions, /v1/responses, /v1/embeddings, GET /v1/models[/{id}],
//            GET /v1/sluice/requests/{id}/result, the Files and Batch APIs, /healthz; answers
//            arrive on one wildcard reply inbox; x-sluice-async answers 202 and later)
//   emits:   chat.requested (with the client's body) | chat.rejected (terminal, answered at once)
//            batch.* and each batch line's chat.requested (the batch runner, over sluice_batches)
//   core:    sluice.cancel.<requestId> when an HTTP client leaves before its answer ended
//   config:  tenants, keys, models, ingress.* applied live (the HTTP limits too)
// Any number of replicas. The doors are composed in ingress.ts so the int tests start the same thing.
// the tokenizer's tables are built on first use (~60 MB, ~0.5 s): here, before the first request
warmTokenizer();
await runService(ServiceName.Ingress, async (ctx) => (await startFrontDoors(ctx)).closers);
