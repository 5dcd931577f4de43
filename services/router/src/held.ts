import { setTimeout as sleep } from 'node:timers/promises';
import { pullEvents, type Bus, type Control, type Decided, type Emitted, type Pulled, type Received } from '@sluice/bus';
import { Consumers } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';

type RouterHeld = typeof Consumers.routerHeld;

/** Held requests are released below this level: where answers come from the model again (0 and 1). */
export const RELEASE_BELOW_LEVEL = 2;
/** Held requests one router replica takes at a time (the durable's max_ack_pending). */
const RELEASE_BATCH = 64;
/** How often a waiting release looks at the degrade level again. */
const LEVEL_POLL_MS = 200;

export interface HeldRelease {
  stop(): Promise<void>;
}

/**
 * Releases the requests held at degrade level 4 (`chat.held`, durable `router-held`) once the
 * level is below RELEASE_BELOW_LEVEL, in stream order: nothing is pulled while the level is
 * higher, so the held requests wait in the stream (the consumer's pending count), surviving any
 * restart; pulled ones run one after another, and one pulled as the level rose again waits in
 * this process (kept from redelivery by heartbeats) until it falls. With several router
 * replicas each releases its own pulls in order; between replicas the order is the stream's
 * only roughly (nats-server 2.9 has no single-active consumer for pull; 2.11's priority groups would pin one).
 *
 * @example
 * const release = await releaseHeld(bus, control, log, onHeldReleased({ control, log }));
 */
export async function releaseHeld(
  bus: Bus,
  control: Control,
  log: Logger,
  handler: (event: Received<RouterHeld>) => Promise<Decided<Emitted<RouterHeld>>>,
): Promise<HeldRelease> {
  // deliverAll: a held request published before this durable first existed is still released
  const consumer = await pullEvents(bus, { consumer: Consumers.routerHeld, maxAckPending: RELEASE_BATCH, deliverAll: true, log, handler });
  let stopped = false;
  const open = () => control.degrade().level < RELEASE_BELOW_LEVEL;
  const whenOpen = async () => {
    while (!stopped && !open()) await sleep(LEVEL_POLL_MS);
  };
  const release = async (msg: Pulled) => {
    await whenOpen();
    // stopping: stop() hands what is still held back to the stream
    if (!stopped) await msg.run();
  };
  const loop = (async () => {
    while (!stopped) {
      await whenOpen();
      if (stopped) break;
      let tail = Promise.resolve();
      await consumer.pull(RELEASE_BATCH, (msg) => {
        tail = tail.then(() => release(msg));
      });
      await tail;
    }
  })();
  return {
    async stop() {
      stopped = true;
      await consumer.stop();
      await loop;
    },
  };
}
