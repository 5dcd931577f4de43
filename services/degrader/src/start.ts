import { casUpdate, consumeEvents, NOTHING, publishEvent, type ServiceContext } from '@sluice/bus';
import { Consumers, ControlKeys } from '@sluice/contracts';
import { degradeRecord, evolve, initialState } from './degrader.js';
import { createLoop } from './loop.js';
import { asDegradeState, readDegrade, watchOverride } from './record.js';

export interface DegraderOptions {
  /** How often samples age out and the level is decided again (tests shorten it). */
  tickMs?: number;
}

/**
 * The degrader:
 *   invoke.attempted, circuit.opened/closed, the operator override, a 1 s tick
 *     -> degrade.changed, then the `degrade` key in sluice_control
 *
 * Run ONE replica. The failure ratio must be taken over every attempt; replicas sharing the
 * durables would each see a part and decide on it, and two of them would write the level
 * against each other. To run several for availability, elect a leader with a KV lease (create
 * a `degrader-leader` key in a bucket with a short TTL, renew it each tick, only the holder
 * decides) and give each replica its own ordered consumer so the standby's window is warm.
 */
export async function startDegrader(ctx: ServiceContext, opts: DegraderOptions = {}) {
  const { bus, buckets, control, log } = ctx;
  const restored = await readDegrade(buckets.control);
  const initial = restored ? evolve(initialState(Date.now()), { kind: 'restored', state: restored }) : initialState(Date.now());
  if (restored) log.info({ level: restored.level, override: restored.override }, 'degrade state restored');

  const loop = createLoop(initial, {
    config: () => control.config(),
    publish: async (event) => void (await publishEvent(bus.js, event)),
    // compare-and-set so an override the operator writes meanwhile is kept, not overwritten
    persist: async (state, reason) =>
      void (await casUpdate<unknown>(buckets.control, ControlKeys.degrade, (current) => degradeRecord(state, reason, asDegradeState(current)?.override))),
    log,
  });

  const attempts = await consumeEvents(bus, {
    consumer: Consumers.degraderInvoke,
    concurrency: 1000,
    // attempts are folded in once a tick anyway: batched pulls instead of a wake-up per attempt
    lingerMs: 250,
    log,
    handler: async (event) => {
      loop.attempt({ at: event.at, ok: event.data.ok, latencyMs: event.data.latencyMs });
      return NOTHING;
    },
  });
  const circuits = await consumeEvents(bus, {
    consumer: Consumers.degraderCircuit,
    concurrency: 64,
    log,
    handler: async (event) => {
      if (event.type === 'circuit.opened') loop.signal({ kind: 'circuitOpened', deployment: event.data.deployment, at: event.at, openForMs: event.data.openForMs });
      else loop.signal({ kind: 'circuitClosed', deployment: event.data.deployment, at: event.at });
      return NOTHING;
    },
  });
  const override = await watchOverride(buckets.control, (value) => {
    if (value !== loop.state().override) loop.signal({ kind: 'override', override: value });
  });
  control.onChange(() => void loop.step());
  const tick = setInterval(() => void loop.step(), opts.tickMs ?? 1000);

  return [() => clearInterval(tick), override, attempts, circuits];
}
