// Test support for the router's int specs: an event collector that also keeps each event's
// traceparent header (the shared one in @sluice/bus/testing keeps only the events).
import type { Bus } from '@sluice/bus';
import { parseEvent, type AnyEvent, type SluiceEvent } from '@sluice/contracts';

/** Collects every event published to the stream's subjects (a core subscription sees them too). */
export function collectEvents(bus: Bus) {
  const events: Array<{ event: AnyEvent; traceparent?: string }> = [];
  const sub = bus.nc.subscribe('sluice.evt.>', {
    callback: (_e, m) => void events.push({ event: parseEvent(m.data), ...(m.headers?.get('traceparent') ? { traceparent: m.headers.get('traceparent') } : {}) }),
  });
  return {
    events,
    /** The first event of a type for a request, once it arrives. */
    async next<T extends AnyEvent['type']>(type: T, requestId: string, timeoutMs = 10_000): Promise<{ event: SluiceEvent<T>; traceparent?: string }> {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const found = events.find((e) => e.event.type === type && e.event.requestId === requestId);
        if (found) return found as { event: SluiceEvent<T>; traceparent?: string };
        if (Date.now() > end) throw new Error(`no ${type} for ${requestId}; saw ${events.map((e) => `${e.event.type}:${e.event.requestId}`).join(', ')}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    stop: () => sub.unsubscribe(),
  };
}
