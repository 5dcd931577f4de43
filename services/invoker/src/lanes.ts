import { pullEvents, type Bus, type Decided, type Delivery, type Pulled, type PulledConsumer, type Received } from '@sluice/bus';
import { invokerConsumer, LANES, LEGACY_INVOKER_DURABLE, Topology, type InvokerConsumer, type Priority } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import { entitlements, idle, nextLane, type LaneSettings, type Running } from './scheduler.js';

/**
 * Server-side bound on each lane durable's unacked messages, across replicas. Each replica's
 * scheduler bounds what it takes (its slots, plus what one pull per lane brings); this only
 * stops a runaway.
 */
const LANE_MAX_ACK_PENDING = 10_000;

export interface LaneDeps {
  /** Read before every decision, so a change of `invoker.concurrency` or `lanes` applies at once. */
  settings: () => LaneSettings;
  /** Called when the settings may have changed. */
  onChange: (listener: () => void) => void;
  log: Logger;
  handler: (event: Received<InvokerConsumer>, delivery: Delivery) => Promise<Decided<never>>;
}

export interface Lanes {
  stop(): Promise<void>;
}

/**
 * The invoker's consumption: one durable per lane (`invoker-<lane>`, filter
 * `sluice.evt.chat.routed.<lane>.*`) and a scheduler over this replica's upstream slots
 * (`invoker.concurrency`). A free slot goes to the lane `nextLane` names among the lanes with a
 * message in hand. Waiting requests stay in the stream: each lane keeps one pull open (so its
 * next request is heard at once) and pulls more only as many as the slots it would be given
 * (`entitlements`), so this replica holds at most its free slots plus one message per lane that
 * it has taken and not started. Those are kept alive with working() and put back on stop.
 *
 * Pulls are sized from the `pending` count the server sends with each message (`backlogged`
 * lanes), so there are no extra round trips. A message held here waits for a slot here even if
 * another replica has one free: at most one upstream call's time, since a held message is
 * started at the next slot its lane is given.
 */
export async function startLanes(bus: Bus, deps: LaneDeps): Promise<Lanes> {
  const consumers = {} as Record<Priority, PulledConsumer>;
  for (const lane of LANES) {
    consumers[lane] = await pullEvents(bus, { consumer: invokerConsumer(lane), maxAckPending: LANE_MAX_ACK_PENDING, log: deps.log, handler: deps.handler });
  }
  const running: Running = idle();
  const held = Object.fromEntries(LANES.map((l) => [l, [] as Pulled[]])) as Record<Priority, Pulled[]>;
  const pulling = new Set<Priority>();
  const backlogged = new Set<Priority>();
  let stopped = false;

  const start = (lane: Priority, msg: Pulled) => {
    running[lane]++;
    void msg.run().finally(() => {
      running[lane]--;
      pump();
    });
  };

  const pull = (lane: Priority, max: number) => {
    pulling.add(lane);
    void consumers[lane]
      .pull(max, (msg) => {
        held[lane].push(msg);
        if (msg.pending > 0) backlogged.add(lane);
        else backlogged.delete(lane);
        pump();
      })
      .finally(() => {
        pulling.delete(lane);
        pump();
      });
  };

  // synchronous and re-entrant: every change (a message in, a call done, new config) runs it
  function pump(): void {
    if (stopped) return;
    const settings = deps.settings();
    for (let lane = nextLane(running, (l) => held[l].length > 0, settings); lane; lane = nextLane(running, (l) => held[l].length > 0, settings)) {
      start(lane, held[lane].shift()!);
    }
    const given = entitlements(running, backlogged, settings);
    for (const lane of LANES) {
      if (pulling.has(lane) || held[lane].length > 0) continue;
      pull(lane, Math.max(1, given[lane]));
    }
  }

  deps.onChange(pump);
  pump();
  return {
    async stop() {
      stopped = true;
      // held messages go back to the stream; running calls finish and are acked
      await Promise.all(LANES.map((l) => consumers[l].stop()));
    },
  };
}

/**
 * Deletes the invoker's durable from before lanes, if it is there: it would keep its unacked
 * messages from redelivery until it is gone, and its filter (`sluice.evt.chat.routed.*`)
 * matches no event any more. Requests it held unacked are lost with it only if no replica ever
 * acked them; an upgrade drains the old invoker first (stop it, then start the new one).
 */
export async function dropLegacyInvoker(bus: Bus, log: Logger): Promise<void> {
  try {
    await bus.jsm.consumers.delete(Topology.stream.name, LEGACY_INVOKER_DURABLE);
    log.info({ durable: LEGACY_INVOKER_DURABLE }, 'deleted the invoker durable from before priority lanes');
  } catch {
    // not there: the usual case
  }
}
