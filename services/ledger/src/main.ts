import { runService } from '@sluice/bus';
import { createDb } from './db.js';
import { migrate } from './migrate.js';
import { buildApp } from './http.js';
import { LEDGER_POSITION, startProjector, streamLastSeq } from './consumer.js';

/** How long the projector waits for more events before committing a short batch (see below). */
const LINGER_MS = 250;

// ledger: every event (sluice.evt.>) -> Postgres/PGlite projections; HTTP read API. Emits nothing.
await runService('ledger', async ({ env, log, bus, control }) => {
  const db = createDb({ databaseUrl: env.DATABASE_URL, dataDir: env.SLUICE_DATA_DIR ?? '.sluice', log });
  await migrate(db);
  log.info({ database: env.DATABASE_URL ? 'postgres' : 'pglite' }, 'ledger database ready');

  const app = buildApp({ db, positionName: LEDGER_POSITION, streamLastSeq: () => streamLastSeq(bus.jsm), logger: log });
  await app.listen({ host: env.SLUICE_HOST ?? '127.0.0.1', port: Number(env.SLUICE_LEDGER_PORT ?? 8081) });

  // prices come from the live config, so a price change applies to events projected after it.
  // Each statement costs PGlite a fixed ~0.5-1.5 ms of CPU whatever its size, and the ledger
  // shares the machine with the request path: waiting 250 ms for a fuller batch (up to 1,000
  // events) keeps that overhead small, and a timeline is still current well within a second.
  const projector = await startProjector(bus, { db, log, lingerMs: LINGER_MS, priceOf: (model) => control.config().models[model]?.price });

  // closed in reverse: the projector finishes its batch, then HTTP stops, then the database closes
  return [() => db.destroy(), () => app.close(), projector];
});
