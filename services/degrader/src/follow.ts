import type { Bus } from '@sluice/bus';
import { parseEvent, Topology, type AnyEvent } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';

export interface FollowOptions {
  /** Subject filter in SLUICE_EVENTS (one: nats-server 2.9). */
  filter: string;
  /** Start this far back, so a replica that starts (or restarts) has a warm window at once. */
  sinceMs: number;
  log: Logger;
  onEvent: (event: AnyEvent) => void;
}

/**
 * Every event on `filter`, from `sinceMs` ago on, to this replica alone: an ordered consumer
 * (ephemeral, no acks, recreated by the client after a gap or a reconnect). The degrader's replicas
 * each need every attempt to judge the window, which a durable shared between them would split.
 * Nothing is redelivered: a replica that was down learns the last `sinceMs` again when it starts,
 * which is all its window keeps anyway. Cost: each replica receives every attempt once.
 */
export async function followEvents(bus: Bus, opts: FollowOptions): Promise<{ stop(): Promise<void> }> {
  const consumer = await bus.js.consumers.get(Topology.stream.name, {
    filter_subjects: opts.filter,
    opt_start_time: new Date(Date.now() - opts.sinceMs).toISOString(),
  });
  const messages = await consumer.consume({
    callback: (m) => {
      try {
        opts.onEvent(parseEvent(m.data));
      } catch (err) {
        opts.log.warn({ err, subject: m.subject, seq: m.seq }, 'degrader: skipped an event it cannot read');
      }
    },
  });
  return { stop: async () => void (await messages.close()) };
}
