import { RequestOne } from '@nats-io/nats-core/internal';
import type { Msg } from '@nats-io/transport-node';

/**
 * nats-core 3.4 answers every successful request (each JetStream publish, KV read and write)
 * by resolving its promise and then calling `cancel()`, which builds a `RequestError("cancelled")`
 * (a stack capture) only to reject the promise it has just resolved. That was 4–8% of each
 * service's CPU. This replaces the success path with the same steps minus the dead error;
 * errors and timeouts still take the library's own path.
 *
 * It reaches into nats-core's internals (pinned at 3.4.0 by the lockfile). Before patching, it
 * builds one request object (never sent) and checks it has the fields the patch uses; if the
 * shape ever changes, the patch is skipped, the library behaves as shipped, and
 * `requestPatchActive()` says so (connectBus logs a warning).
 */
interface RequestInternals {
  resolver(err: Error | null, msg: Msg): void;
  timer?: { cancel(): void };
  deferred?: { resolve(m: Msg): void };
  mux?: { cancel(r: unknown): void };
}

type Patchable = RequestInternals & { __sluicePatched?: boolean };

const proto: Patchable | undefined = typeof RequestOne === 'function' ? RequestOne.prototype : undefined;

/** True when a request object built by this nats-core has everything the patched success path touches. */
function hasExpectedShape(): boolean {
  if (typeof proto?.resolver !== 'function') return false;
  const mux = { cancel: () => undefined };
  let probe: RequestInternals | undefined;
  try {
    probe = new (RequestOne as unknown as new (...args: unknown[]) => RequestInternals)(mux, '_SLUICE.probe', { timeout: 60_000 }, false);
    return probe.mux === mux && typeof probe.deferred?.resolve === 'function' && typeof probe.timer?.cancel === 'function';
  } catch {
    return false;
  } finally {
    // the probe's timer must neither keep the process alive nor reject unhandled
    try {
      probe?.timer?.cancel();
      void (probe?.timer as Promise<unknown> | undefined)?.catch?.(() => undefined);
    } catch {
      // nothing to clean up
    }
  }
}

if (proto && !proto.__sluicePatched && hasExpectedShape()) {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with .call(this)
  const original = proto.resolver;
  proto.resolver = function (this: RequestInternals, err: Error | null, msg: Msg) {
    if (err || !this.deferred || !this.mux) return original.call(this, err, msg);
    this.timer?.cancel();
    this.deferred.resolve(msg);
    this.mux.cancel(this);
  };
  proto.__sluicePatched = true;
}

/**
 * Whether nats-core's request success path is patched in this process. False means nats-core's
 * internals are not the shape the patch was written for (a version other than 3.4.0): requests
 * work as shipped, at the CPU cost the patch was there to save.
 */
export function requestPatchActive(): boolean {
  return proto?.__sluicePatched === true;
}
