import type { Attributes, Counter, Histogram, Meter, ObservableGauge } from '@opentelemetry/api';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { Topology, type DegradeState } from '@sluice/contracts';
import { Metrics, type Logger } from '@sluice/telemetry';
import type { Db } from './db.js';
import { readPosition } from './store.js';
import { Instrument, measure, MetricAttributes, type Measurement } from './metrics-events.js';
import { followCommitted, type CommittedFollower } from './metrics-follow.js';
import { budgetUse, consumerBacklogs, followCircuits, type CircuitStates } from './metrics-gauges.js';

/** Request durations, ingress's receipt to the terminal event (s): a cached answer's ms to a long stream's minutes. */
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
/** A stage's time (s): a JetStream hop is ~0.3 ms; the invoker's includes the upstream call. */
const HOP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** The outcomes the availability SLO reads (deploy/prometheus/rules/slo.yml): good, bad, and degraded (bad). */
const SLO_OUTCOMES = ['completed', 'failed', 'degraded'];

/** How often committed events are counted in the background after a commit; a scrape counts them at once. */
const FOLLOW_EVERY_MS = 1_000;

/** The durables whose backlog is reported: the event stream's and the async results'. */
const STREAMS = [Topology.stream.name, Topology.results.name];

export interface LedgerMetricsDeps {
  /** `meter('sluice.ledger')` from @sluice/telemetry (the no-op meter when metrics are off: then nothing here runs). */
  meter: Meter;
  db: Db;
  /** The projector's position row (`LEDGER_POSITION`). */
  positionName: string;
  /** The degrade state in force, as the control bucket's watch last saw it. */
  degrade: () => DegradeState;
  /** `sluice_circuits`. */
  circuits: KV;
  jsm: JetStreamManager;
  log: Logger;
  now?: () => number;
}

export interface LedgerMetrics {
  /** Call after each committed batch: its events are counted within FOLLOW_EVERY_MS (or at the next scrape); nothing before the first collection. */
  committed(): void;
  stop(): void;
}

/**
 * The Sluice metrics of docs/metrics.md, served by the ledger. The request counters and
 * histograms come from what the projection committed (metrics-follow.ts: each event once,
 * whatever the stream redelivered, with the cost and savings the projection computed), from the
 * first collection on: counted within FOLLOW_EVERY_MS of each commit, and brought up to the
 * stored position by every collection (the gauges' callback runs before the SDK reads this
 * meter's counters, so a scrape shows every event committed before it). The gauges are read on
 * collection: circuits from a watch of `sluice_circuits`, the degrade level from the control
 * watch, each durable's backlog from JetStream, budget use from the projection.
 *
 * Until something collects (a scrape, an OTLP push) nothing is read or watched, so a ledger
 * whose metrics nobody reads, or are off (`SLUICE_METRICS=off`: a no-op meter never collects),
 * pays nothing for them.
 *
 * @example
 * const metrics = startLedgerMetrics({ meter: meter('sluice.ledger'), db, positionName: LEDGER_POSITION, degrade: control.degrade, circuits: buckets.circuits, jsm: bus.jsm, log });
 * await startProjector(bus, { ..., onBatch: () => metrics.committed() });
 */
export function startLedgerMetrics(deps: LedgerMetricsDeps): LedgerMetrics {
  const { meter, log } = deps;
  const now = deps.now ?? Date.now;
  const counter = (m: { name: string; unit: string }, description: string) => meter.createCounter(m.name, { unit: m.unit, description });
  const histogram = (m: { name: string; unit: string }, description: string, buckets: number[]) =>
    meter.createHistogram(m.name, { unit: m.unit, description, advice: { explicitBucketBoundaries: buckets } });
  const gauge = (m: { name: string; unit: string }, description: string) => meter.createObservableGauge(m.name, { unit: m.unit, description });

  const instruments: Record<Instrument, Counter | Histogram> = {
    [Instrument.requests]: counter(Metrics.requests, 'Requests ended, by outcome, tenant, requested model, lane and canary variant.'),
    [Instrument.requestDuration]: histogram(Metrics.requestDuration, "From ingress's receipt of a request to its terminal event.", REQUEST_BUCKETS),
    [Instrument.hopDuration]: histogram(Metrics.hopDuration, 'From the event a stage took to the one it emitted for it.', HOP_BUCKETS),
    [Instrument.cost]: counter(Metrics.cost, "What requests cost, as the ledger billed them (upstream answers and the semantic cache's embeddings)."),
    [Instrument.cacheHits]: counter(Metrics.cacheHits, 'Requests answered from the cache, by kind.'),
    [Instrument.cacheSavings]: counter(Metrics.cacheSavings, 'What cached answers would have cost upstream.'),
    [Instrument.throttles]: counter(Metrics.throttles, 'Requests refused by a rate limit (by its layer) or a spent budget (`budget`).'),
  };
  // a counter series' first value is never in a rate() (there is no sample before it): the SLO's
  // outcomes start at 0 with a label set's first request, so its first failure is seen
  const started = new Set<string>();
  const startSloSeries = (counter: Counter, attributes: Record<string, string>) => {
    const rest = Object.fromEntries(Object.entries(attributes).filter(([k]) => k !== MetricAttributes.outcome));
    const key = JSON.stringify(Object.entries(rest).sort(([a], [b]) => a.localeCompare(b)));
    if (started.has(key)) return;
    started.add(key);
    for (const outcome of SLO_OUTCOMES) counter.add(0, { ...rest, [MetricAttributes.outcome]: outcome });
  };
  const record = (m: Measurement) => {
    const i = instruments[m.instrument];
    if (m.instrument === Instrument.requests && 'add' in i) startSloSeries(i, m.attributes);
    if ('add' in i) i.add(m.value, m.attributes);
    else i.record(m.value, m.attributes);
  };

  // made at the first collection: counters start at 0 there, as after a restart
  let follower: CommittedFollower | undefined;
  let circuits: Promise<CircuitStates> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const follow = async () => {
    try {
      follower ??= followCommitted(deps.db, deps.positionName, await readPosition(deps.db, deps.positionName), (e) => measure(e).forEach(record));
      await follower.sync();
    } catch (err) {
      log.warn({ err, cursor: follower?.cursor() }, 'could not count committed events for the metrics; retrying at the next commit or scrape');
    }
  };

  const circuitState = gauge(Metrics.circuitState, 'Circuit of each deployment: 0 closed, 1 half-open, 2 open.');
  const degradeLevel = gauge(Metrics.degradeLevel, 'The degrade level in force, 0 (full service) to 4 (maintenance).');
  const consumerPending = gauge(Metrics.consumerPending, 'Messages each durable has not yet been delivered (pending) or not yet acked (ack_pending).');
  const budgetUtilization = gauge(
    Metrics.budgetUtilization,
    "Spent ÷ limit of each budget in its current window (a per-user, feature or key budget's highest counter).",
  );
  const gauges = [circuitState, degradeLevel, consumerPending, budgetUtilization];
  const observeAll = async (observer: { observe(gauge: ObservableGauge, value: number, attributes?: Attributes): void }) => {
    if (stopped) return;
    // first: the counters this meter reports next are then current to the stored position
    await follow();
    circuits ??= followCircuits(deps.circuits, log);
    const [states, backlogs, budgets] = await Promise.all([
      circuits,
      consumerBacklogs(deps.jsm, STREAMS),
      budgetUse(deps.db, now()).catch((err: unknown) => (log.warn({ err }, 'could not read budget use for the metrics'), [])),
    ]);
    for (const [deployment, state] of states.states()) observer.observe(circuitState, state, { [MetricAttributes.deployment]: deployment });
    observer.observe(degradeLevel, deps.degrade().level);
    for (const b of backlogs) {
      const consumer = { [MetricAttributes.consumer]: b.durable, [MetricAttributes.stream]: b.stream };
      observer.observe(consumerPending, b.pending, { ...consumer, [MetricAttributes.state]: 'pending' });
      observer.observe(consumerPending, b.ackPending, { ...consumer, [MetricAttributes.state]: 'ack_pending' });
    }
    for (const b of budgets) observer.observe(budgetUtilization, b.utilization, { [MetricAttributes.tenant]: b.tenant, [MetricAttributes.budget]: b.budget });
  };
  meter.addBatchObservableCallback(observeAll, gauges);

  return {
    committed() {
      if (!follower || stopped) return;
      timer ??= setTimeout(() => {
        timer = undefined;
        void follow();
      }, FOLLOW_EVERY_MS).unref();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      meter.removeBatchObservableCallback(observeAll, gauges);
      void circuits?.then((c) => c.stop());
    },
  };
}
