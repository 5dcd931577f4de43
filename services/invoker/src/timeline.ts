import type { AnyEvent } from '@sluice/contracts';

/**
 * The events of one request. Attempts and circuit changes are published as they happen,
 * without waiting for each ack on the hot path; `settle` waits for all of them, so the reply
 * and the ack of the input never overtake one that could be lost. The terminal event is sent
 * behind them on the same connection (so the stream keeps the order) and awaited with them; if
 * one of them fails, the input is redelivered and the retry publishes it under the same id.
 */
export class Timeline {
  private readonly pending: Array<Promise<void>> = [];
  private failure: Error | undefined;

  constructor(private readonly publish: (event: AnyEvent) => Promise<unknown>) {}

  fire(event: AnyEvent): void {
    // the rejection is kept for settle(); attaching the handler now keeps it from being unhandled
    this.pending.push(
      this.publish(event).then(
        () => undefined,
        (e: unknown) => {
          this.failure ??= e instanceof Error ? e : new Error(String(e));
        },
      ),
    );
  }

  /** Resolves when every fired event is in the stream; throws the first publish failure. */
  async settle(): Promise<void> {
    await Promise.all(this.pending);
    if (this.failure !== undefined) throw this.failure;
  }
}
