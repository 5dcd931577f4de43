import { RequestOne } from '@nats-io/nats-core/internal';
import type { Msg } from '@nats-io/transport-node';

/**
 * nats-core 3.4 answers every successful request (each JetStream publish, KV read and write)
 * by resolving its promise and then calling `cancel()`, which builds a `RequestError("cancelled")`
 * (a stack capture) only to reject the promise it has just resolved. That was 4–8% of each
 * service's CPU. This replaces the success path with the same steps minus the dead error;
 * errors and timeouts still take the library's own path.
 *
 * It reaches into nats-core's internals (pinned at 3.4.0 by the lockfile): if the shape ever
 * changes, the patch is skipped and the library behaves as shipped.
 */
interface RequestInternals {
  resolver(err: Error | null, msg: Msg): void;
  timer?: { cancel(): void };
  deferred?: { resolve(m: Msg): void };
  mux?: { cancel(r: unknown): void };
}

const proto = RequestOne.prototype as unknown as RequestInternals & { __sluicePatched?: boolean };
if (typeof proto.resolver === 'function' && !proto.__sluicePatched) {
  const original = proto.resolver;
  proto.resolver = function (this: RequestInternals, err: Error | null, msg: Msg) {
    if (err || !this.deferred || !this.mux) return original.call(this, err, msg);
    this.timer?.cancel();
    this.deferred.resolve(msg);
    this.mux.cancel(this);
  };
  proto.__sluicePatched = true;
}
