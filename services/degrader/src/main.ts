import { runService } from '@sluice/bus';
import { ServiceName } from '@sluice/contracts';
import { startReplica } from './replica.js';

// degrader: invoke.attempted and circuit.* (an ordered consumer per replica), the records of
// sluice_circuits, the operator override (key `degrade` in sluice_control), backlog and budgets
// polled, and a 1 s tick -> degrade.changed, then the `degrade` key written. Any number of
// replicas: only the holder of the lease in sluice_leases decides (README: Replicas).
// Metrics: /metrics on SLUICE_METRICS_PORT (9475 under npm start; runService, docs/metrics.md).
await runService(ServiceName.Degrader, async (ctx) => (await startReplica(ctx)).closers);
