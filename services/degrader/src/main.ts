import { consumeEvents, runService } from '@sluice/bus';
import { Consumers, ServiceName } from '@sluice/contracts';
import { onCircuitChanged, onInvokeAttempted, onOverride } from './handlers.js';
import { openLoop } from './open-loop.js';
import { watchOverride } from './record.js';

// degrader: invoke.attempted, circuit.opened/closed, the operator override (key `degrade` in
// sluice_control) and a 1 s tick -> degrade.changed, then the `degrade` key written.
// Run ONE replica: the failure ratio must be taken over every attempt (README: Single replica).
await runService(ServiceName.Degrader, async ({ bus, buckets, control, log }) => {
  const loop = await openLoop({ bus, buckets, control, log });
  const attempts = await consumeEvents(bus, {
    consumer: Consumers.degraderInvoke,
    concurrency: 1000,
    // attempts are folded in once a tick anyway: batched pulls instead of a wake-up per attempt
    lingerMs: 250,
    log,
    handler: onInvokeAttempted(loop),
  });
  const circuits = await consumeEvents(bus, {
    consumer: Consumers.degraderCircuit,
    concurrency: 64,
    log,
    handler: onCircuitChanged(loop),
  });
  const override = await watchOverride(buckets.control, onOverride(loop));
  control.onChange(() => void loop.step());
  const tick = setInterval(() => void loop.step(), 1000);
  return [() => clearInterval(tick), override, attempts, circuits];
});
