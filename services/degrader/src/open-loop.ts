import { casUpdate, publishEvent, type ServiceContext } from '@sluice/bus';
import { ControlKeys } from '@sluice/contracts';
import { degradeRecord, evolve, initialState } from './degrader.js';
import { createLoop, type DegraderLoop } from './loop.js';
import { asDegradeState, readDegrade } from './record.js';

/**
 * The loop on the bus: restored from the `degrade` record (the level, its `since` and the
 * override survive a restart; the window starts empty), publishing `degrade.changed` to the
 * stream and then writing the record. With `leading` (the lease), only while it holds.
 */
export async function openLoop(
  { bus, buckets, control, log }: Pick<ServiceContext, 'bus' | 'buckets' | 'control' | 'log'>,
  leading?: () => boolean,
  now = Date.now,
): Promise<DegraderLoop> {
  const restored = await readDegrade(buckets.control);
  if (restored) log.info({ level: restored.level, override: restored.override }, 'degrade state restored');
  const initial = restored ? evolve(initialState(now()), { kind: 'restored', state: restored }) : initialState(now());
  return createLoop(initial, {
    config: () => control.config(),
    publish: async (event) => void (await publishEvent(bus.js, event)),
    // compare-and-set so an override the operator writes meanwhile is kept, not overwritten
    persist: async (state, reason) =>
      void (await casUpdate<unknown>(buckets.control, ControlKeys.degrade, (current) => degradeRecord(state, reason, asDegradeState(current)?.override))),
    log,
    now,
    ...(leading ? { leading } : {}),
    restore: () => readDegrade(buckets.control),
  });
}
