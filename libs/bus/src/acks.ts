import type { JsMsg } from '@nats-io/jetstream';

/**
 * How long an ack may wait for a write to ride on. Far below the ack wait (5 s), so holding it
 * never causes a redelivery; a crash loses at most this much of acks, and those messages come
 * back and are deduplicated by their output's msg id like any redelivery.
 */
export const ACK_LINGER_MS = 20;

/**
 * Acks held back so they share a socket write with the next event this process publishes.
 *
 * On this kind of machine a write to the loopback socket costs 0.1–0.2 ms of CPU when the
 * other side is idle (it wakes nats-server), and at one request in flight every ack was a
 * write of its own: a handler's output publish, then its ack a round trip later. nats-core
 * coalesces everything queued in one microtask into one write, so acks sent just before a
 * publish go out with it for free. Acks with no publish to join (the last of a burst, a
 * consumer that never publishes) go out on a timer, together.
 *
 * Only acks wait; nak and term go out at once. An ack is still sent only after the handler's
 * output was acked by the stream, so nothing changes for crash safety but the window.
 */
class AckBatcher {
  private pending: JsMsg[] = [];
  private timer: NodeJS.Timeout | undefined;

  add(msg: JsMsg): void {
    this.pending.push(msg);
    this.timer ??= setTimeout(() => this.flush(), ACK_LINGER_MS);
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0) return;
    const msgs = this.pending;
    this.pending = [];
    for (const m of msgs) {
      try {
        m.ack();
      } catch {
        // connection closed: the message is redelivered and its output deduplicated
      }
    }
  }
}

// one per process: acks of any consumer join any publish (in a service, one connection does both)
const batcher = new AckBatcher();

/** Acks `msg` with the next publish, or within ACK_LINGER_MS. */
export function ackSoon(msg: JsMsg): void {
  batcher.add(msg);
}

/** Sends the held acks now (they join whatever else is written in this microtask). */
export function flushAcks(): void {
  batcher.flush();
}
