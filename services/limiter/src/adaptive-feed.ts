import { DeliverPolicy, type ConsumerMessages, type JetStreamClient } from '@nats-io/jetstream';
import type { Control } from '@sluice/bus';
import { EventType, parseEvent, Subjects, Topology, type SluiceConfig, type SluiceEvent } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import { evolve, forget, globalLimit, initialState, type AdaptiveState, type GlobalLimit } from './adaptive.js';
import type { LayerRate } from './limiter.js';

/**
 * One replica's learned global limit, kept current from the stream. Every replica reads every
 * `upstream.limits_observed` through an ordered consumer of its own (ephemeral, no acks):
 * each needs all of them, not a share as a durable would hand out, and the state is small and
 * rebuilt from the stream in a moment, so no KV copy needs a writer to keep it. At start it reads
 * back `forgetAfterMs` of observations, what a replica running all along would still remember.
 * Observations that arrive while `limits.adaptive.enabled` is off are dropped, and so is what
 * was learned: turning it on starts learning afresh.
 */
export class AdaptiveLimits {
  private state: AdaptiveState = initialState;
  private messages: ConsumerMessages | undefined;
  private reading: Promise<void> | undefined;
  /** Observations folded since start (for tests and the log). */
  folded = 0;

  constructor(
    private readonly control: Pick<Control, 'config'>,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Starts reading the observations; resolves once the consumer exists. */
  async start(js: JetStreamClient): Promise<void> {
    const since = this.now() - this.control.config().limits.adaptive.forgetAfterMs;
    const consumer = await js.consumers.get(Topology.stream.name, {
      filter_subjects: Subjects.eventsOf(EventType.UpstreamLimitsObserved),
      deliver_policy: DeliverPolicy.StartTime,
      opt_start_time: new Date(since).toISOString(),
    });
    const messages = await consumer.consume();
    this.messages = messages;
    this.reading = (async () => {
      for await (const m of messages) {
        try {
          this.fold(parseEvent(m.data) as SluiceEvent<'upstream.limits_observed'>);
        } catch (err) {
          this.log.warn({ err, seq: m.seq }, 'unreadable upstream.limits_observed; skipped');
        }
      }
    })().catch((err: unknown) =>
      // what was learned stays until it is forgotten (forgetAfterMs); the replica's restart reads it back
      this.log.error({ err }, 'stopped reading upstream.limits_observed; the global limit learns nothing new'),
    );
  }

  /** Folds one observation (what the consumer does with each; tests call it directly). */
  fold(event: SluiceEvent<'upstream.limits_observed'>): void {
    if (event.type !== EventType.UpstreamLimitsObserved) return;
    const settings = this.control.config().limits.adaptive;
    if (!settings.enabled) {
      this.state = initialState;
      return;
    }
    const { deployment } = event.data;
    const before = this.state[deployment]?.backedOffAt;
    this.state = evolve(forget(this.state, settings, event.at), deployment, event.data, event.at, settings);
    this.folded++;
    const after = this.state[deployment];
    if (after?.backedOffAt !== before && after) {
      this.log.info(
        { deployment, factor: Math.round(after.factor * 1000) / 1000, stated: after.stated },
        'upstream throttled: its share of the global limit backed off',
      );
    }
  }

  /** The global layer's limit now, from the live config and what was learned. */
  global(config: SluiceConfig = this.control.config(), now = this.now()): GlobalLimit {
    return globalLimit(this.state, config, now);
  }

  /** The global layer's rate and ceiling now, as the admission's limits take them. */
  rate(config: SluiceConfig = this.control.config(), now = this.now()): LayerRate {
    const { rate, ceiling, note } = this.global(config, now);
    return { ...rate, ...(ceiling ? { ceiling } : {}), ...(note ? { note } : {}) };
  }

  async stop(): Promise<void> {
    await this.messages?.close();
    await this.reading;
  }
}
