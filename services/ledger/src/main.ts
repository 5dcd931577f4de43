import { consumeEvents, publishEvent, runService } from '@sluice/bus';
import { budgetsFor, Consumers } from '@sluice/contracts';
import { meter } from '@sluice/telemetry';
import { createDb } from './db.js';
import { migrate } from './migrate.js';
import { buildApp } from './http.js';
import { consumerDepth } from './lanes.js';
import { LEDGER_POSITION, natsStreamReader, startProjector, streamLastSeq } from './consumer.js';
import { readPosition } from './store.js';
import { startSpendKv } from './spend-kv.js';
import { startAlertOutbox } from './alert-outbox.js';
import { alertDeliveryHandler } from './deliver.js';
import { startCanaryGuard } from './guard.js';
import { deliverResultWebhooks } from './result-webhooks.js';
import { startLedgerMetrics } from './metrics.js';

/** How long the projector waits for more events before committing a short batch (see below). */
const LINGER_MS = 250;
/** How often the canary guard judges the guarded canaries' windows: a rollback lands within this after the projection shows it. */
const GUARD_EVERY_MS = 1_000;

// ledger: every event (sluice.evt.>) -> Postgres/PGlite projections, budget spend -> sluice_budgets,
// budget.threshold_crossed (+ sluice.alerts.<tenant>); HTTP read API and admin API (virtual keys in
// sluice_keys -> key.created | key.rotated | key.revoked); Sluice's metrics at /metrics.
// ledger-alerts: budget.threshold_crossed -> signed webhook POSTs -> alert.delivery_attempted.
// ledger-result-webhooks (on SLUICE_RESULTS): an async answer that named a webhook -> signed POSTs -> result.delivery_attempted.
await runService('ledger', async ({ env, log, bus, buckets, control }) => {
  const db = createDb({ databaseUrl: env.DATABASE_URL, dataDir: env.SLUICE_DATA_DIR ?? '.sluice', log });
  await migrate(db);
  log.info({ database: env.DATABASE_URL ? 'postgres' : 'pglite' }, 'ledger database ready');

  // HTTP: the read API and the admin API (keys in sluice_keys, key.* events), both behind admin or
  // tenant read keys from the live config; opted-in tenants' timeline text is read from the stream
  const stream = natsStreamReader(bus.jsm);
  const app = buildApp({
    db,
    positionName: LEDGER_POSITION,
    streamLastSeq: () => streamLastSeq(bus.jsm),
    laneDepth: consumerDepth(bus.jsm),
    logger: log,
    config: () => control.config(),
    readEvent: async (seq) => (await stream.read(seq).catch(() => null))?.data,
    // the console's live section: the degrade state this process already watches, and the invokers' circuits (console.ts)
    live: { degrade: () => control.degrade(), circuits: buckets.circuits },
    admin: {
      keys: buckets.keys,
      publish: async (event) => {
        await publishEvent(bus.js, event);
      },
    },
  });
  await app.listen({ host: env.SLUICE_HOST ?? '127.0.0.1', port: Number(env.SLUICE_LEDGER_PORT ?? 8081) });

  // prices come from the live config, so a price change applies to events projected after it.
  // Each statement costs PGlite a fixed ~0.5-1.5 ms of CPU whatever its size, and the ledger
  // shares the machine with the request path: waiting 250 ms for a fuller batch (up to 1,000
  // events) keeps that overhead small, and a timeline is still current well within a second.
  // Budget limits and thresholds also come from the live config, looked up when a request's
  // chat.admitted is projected (its context names its user, feature and key; a key's own budget
  // is only there). After each commit the changed counters go to KV and crossed thresholds out.
  const spendKv = startSpendKv(buckets.budgets, log);
  const outbox = startAlertOutbox({ db, bus, kv: buckets.budgets, log });
  const deliveries = await consumeEvents(bus, {
    consumer: Consumers.ledgerAlerts,
    concurrency: 16,
    log,
    handler: alertDeliveryHandler({ config: control.config, kv: buckets.budgets, env, log }),
  });
  // async answers that named a webhook, POSTed like the alerts (signed, retried): result.delivery_attempted
  const resultHooks = await deliverResultWebhooks({ bus, config: control.config, env, log });
  // a crash after a commit may have lost its KV writes and left alerts unsent
  await spendKv.republish(db, await readPosition(db, LEDGER_POSITION), Date.now());
  outbox.kick();
  // Sluice's metrics at /metrics (docs/metrics.md): requests, cost, cache, throttles from what each
  // commit projected; circuits, degrade level, durables' backlogs, budget use read on each scrape
  const metrics = startLedgerMetrics({
    meter: meter('sluice.ledger'),
    db,
    positionName: LEDGER_POSITION,
    degrade: control.degrade,
    circuits: buckets.circuits,
    jsm: bus.jsm,
    log,
  });
  const projector = await startProjector(bus, {
    db,
    log,
    lingerMs: LINGER_MS,
    priceOf: (model) => control.config().models[model]?.price,
    budgetsOf: (subject, at) => budgetsFor(control.config(), subject, at),
    onSpend: (spend) => {
      spendKv.changed(spend.changed);
      if (spend.alerts) outbox.kick();
    },
    onBatch: () => metrics.committed(),
  });

  // canaries whose variant fails more than their baseline go back to it (control key `canaries`, canary.rolled_back)
  const guard = startCanaryGuard(
    {
      db,
      control: buckets.control,
      canaries: () => control.config().canaries ?? [],
      rolledBack: () => control.canaries(),
      publish: async (event) => {
        await publishEvent(bus.js, event);
      },
      log,
    },
    GUARD_EVERY_MS,
  );

  // closed in reverse: the guard and the projector finish their pass, spend and alerts go out,
  // then HTTP stops, then the database closes
  return [() => db.destroy(), () => app.close(), deliveries, resultHooks, outbox, spendKv, metrics, projector, guard];
});
