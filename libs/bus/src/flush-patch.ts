import { ProtocolHandler } from '@nats-io/nats-core/internal';
import type { NatsConnection } from '@nats-io/transport-node';

/**
 * nats-core writes what a connection has queued once the current microtask queue reaches the
 * flush it scheduled with the first queued command: a handler that publishes, awaits, and
 * publishes again (or acks) sends each in a socket write of its own, and so does each of the
 * messages one socket read delivered. On this machine a loopback write that wakes nats-server
 * costs 0.1-0.2 ms of CPU. This moves the flush to `setImmediate`, after the event loop's I/O
 * callbacks and every microtask they caused: everything the handling of one read produced leaves
 * in one write. The wait it adds is the rest of the current turn of the loop (the work that
 * would have run before the next write anyway). A command queue over nats-core's threshold
 * (FLUSH_THRESHOLD) is still written at once, as the library does.
 *
 * Reaches into nats-core's internals (pinned at 3.4.0 by the lockfile) like request-patch.ts:
 * if `sendCommand` is not there, nothing is patched and `flushPatchActive()` says so.
 */
interface Internals {
  outbound: { length(): number; size(): number; fill(buf: Uint8Array, ...payloads: Uint8Array[]): void };
  pendingLimit: number;
  flushPending(): void;
  sendCommand(cmd: string | Uint8Array, ...payloads: Uint8Array[]): void;
}

type Patchable = Internals & { __sluiceFlushPatched?: boolean };

const proto: Patchable | undefined = typeof ProtocolHandler === 'function' ? (ProtocolHandler.prototype as unknown as Patchable) : undefined;
const encoder = new TextEncoder();

if (proto && !proto.__sluiceFlushPatched && typeof proto.sendCommand === 'function' && typeof proto.flushPending === 'function') {
  proto.sendCommand = function (this: Internals, cmd: string | Uint8Array, ...payloads: Uint8Array[]) {
    const queued = this.outbound.length();
    this.outbound.fill(typeof cmd === 'string' ? encoder.encode(cmd) : cmd, ...payloads);
    if (queued === 0) setImmediate(() => this.flushPending());
    else if (this.outbound.size() >= this.pendingLimit) this.flushPending();
  };
  proto.__sluiceFlushPatched = true;
}

/** Whether nats-core's writes are batched per turn of the event loop in this process (see above). */
export function flushPatchActive(): boolean {
  return proto?.__sluiceFlushPatched === true;
}

/**
 * Writes what `nc` has queued at the next microtask, as nats-core does unpatched, for a message
 * whose latency matters more than sharing a write: a reply a client is waiting for. An invoker
 * that reads a whole SSE answer in one socket read forwards every chunk in the same turn of the
 * loop; batched per turn, the first chunk leaves with the last. (Two pairs of bench runs against
 * the zero-latency simulator measured +2.5 ms to the first token at one request in flight with
 * the batching and without this; a later three pairs could not tell the two apart in the
 * machine's noise.) The turn's later writes still share the write scheduled for its end.
 */
export function flushSoon(nc: NatsConnection): void {
  const protocol = (nc as unknown as { protocol?: Partial<Internals> }).protocol;
  if (typeof protocol?.flushPending === 'function') queueMicrotask(() => protocol.flushPending!());
}
