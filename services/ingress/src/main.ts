import { runService } from '@sluice/bus';
import { ServiceName } from '@sluice/contracts';
import { startFrontDoors } from './ingress.js';

// ingress: consumes no events; it is where requests come in.
//   listens: NATS `sluice.chat.<tenant>` (queue group `ingress`; the caller's reply subject is
//            ctx.replyTo) and HTTP on SLUICE_HOST:SLUICE_INGRESS_PORT (POST /v1/chat/completions,
//            GET /v1/models, /healthz; answers arrive on one wildcard reply inbox)
//   emits:   chat.requested | chat.rejected (terminal, answered at once)
//   config:  tenants, keys, models, ingress.* applied live (the HTTP limits too)
// Any number of replicas. The doors are composed in ingress.ts so the int tests start the same thing.
await runService(ServiceName.Ingress, async (ctx) => (await startFrontDoors(ctx)).closers);
