/** What `register` leaves behind when it started the SDK. */
export interface TracingHandle {
  /** Exports what is buffered, then stops the SDK. */
  shutdown(): Promise<void>;
  /**
   * The sampler follows the parent's decision (`parentbased_*`, OpenTelemetry's default): a child
   * of an unsampled span is never recorded, so no span needs building for it.
   */
  followsParent?: boolean;
}

// On globalThis rather than in a module variable: the preload and the service could load this
// file through different specifiers, and the answer must be the same for both.
const KEY = Symbol.for('sluice.telemetry.tracing');
type WithHandle = typeof globalThis & { [KEY]?: TracingHandle };

/**
 * Whether the OpenTelemetry SDK runs in this process (OTEL_EXPORTER_OTLP_ENDPOINT was set at
 * start). Every tracing path checks this first, so with tracing off the hot path pays one
 * property read and nothing else.
 */
export function tracingOn(): boolean {
  return (globalThis as WithHandle)[KEY] !== undefined;
}

/** Whether a child of an unsampled span is unsampled too (tracing on, parent-based sampler). */
export function followsParent(): boolean {
  return (globalThis as WithHandle)[KEY]?.followsParent === true;
}

/** Called once by the preload after the SDK started. */
export function markTracingStarted(handle: TracingHandle): void {
  (globalThis as WithHandle)[KEY] = handle;
}

/**
 * Flushes buffered spans and stops the SDK; a no-op when tracing is off. Waits at most
 * `timeoutMs`, so a collector that is down cannot hold up a shutdown.
 */
export async function shutdownTracing(timeoutMs = 3000): Promise<void> {
  const handle = (globalThis as WithHandle)[KEY];
  if (!handle) return;
  delete (globalThis as WithHandle)[KEY];
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    handle.shutdown().catch(() => undefined),
    new Promise<void>((r) => {
      timer = setTimeout(r, timeoutMs);
      timer.unref();
    }),
  ]);
  clearTimeout(timer);
}
