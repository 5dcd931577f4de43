import type { KV } from '@nats-io/kv';
import { createOnce, encodeJson, getJson, isWrongRevision, publishEvent, type Bus } from '@sluice/bus';
import { Subjects, type SluiceEvent } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import type { Db } from './db.js';

/** Pause before trying the outbox again after a failure. */
const RETRY_MS = 2000;
/** Alerts taken from the outbox at a time. */
const PAGE = 100;

/**
 * An alert's marker in `sluice_budgets` (`BudgetKeys.alert`, which is the alert's id): created
 * before it is first published, `sent` once it was. It outlives the database, so a rebuild that
 * decides the same alerts again finds them sent.
 */
interface AlertMarker {
  state: 'sending' | 'sent';
  eventId: string;
  at: number;
}

export interface AlertOutbox {
  /** Sends what the outbox holds, in the background (after a batch put alerts there, and at start). */
  kick(): void;
  /** Resolves when the outbox was last found empty (or sending stopped). */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Publishes the alerts the projection put in the `budget_alerts` outbox: each
 * `budget.threshold_crossed` goes to the event stream (its id is the Nats-Msg-Id) and the same
 * JSON to `sluice.alerts.<tenant>` on core NATS, then its row is marked sent.
 *
 * Once per budget, window and threshold, ever: an alert whose marker says `sent` is never
 * published again, whether the database was rebuilt or the process restarted. A marker left at
 * `sending` (a crash between the publish and the marker's update) is published again: the
 * stream drops the repeat within its duplicate window (2 minutes); core NATS subscribers may see
 * it twice, as they may miss it when none listens.
 */
export function startAlertOutbox(deps: { db: Db; bus: Bus; kv: KV; log: Logger }): AlertOutbox {
  let running: Promise<void> | undefined;
  let again = false;
  let stopping = false;

  const send = async (event: SluiceEvent<'budget.threshold_crossed'>): Promise<boolean> => {
    const key = event.requestId;
    let state: AlertMarker['state'] | undefined;
    try {
      await createOnce(deps.kv, key, encodeJson({ state: 'sending', eventId: event.id, at: Date.now() } satisfies AlertMarker));
    } catch (e) {
      if (!isWrongRevision(e)) throw e;
      state = (await getJson<AlertMarker>(deps.kv, key))?.value.state;
    }
    if (state === 'sent') return false;
    await publishEvent(deps.bus.js, event);
    deps.bus.nc.publish(Subjects.alerts(event.tenant), JSON.stringify(event));
    await deps.kv.put(key, encodeJson({ state: 'sent', eventId: event.id, at: Date.now() } satisfies AlertMarker));
    return true;
  };

  const drain = async () => {
    while (!stopping) {
      const rows = await deps.db
        .selectFrom('budget_alerts')
        .select(['alert_id', 'event'])
        .where('sent_at', 'is', null)
        .orderBy('crossed_seq')
        .limit(PAGE)
        .execute();
      if (rows.length === 0) return;
      for (const row of rows) {
        if (stopping) return;
        const event = row.event as SluiceEvent<'budget.threshold_crossed'>;
        const published = await send(event);
        await deps.db.updateTable('budget_alerts').set({ sent_at: new Date() }).where('alert_id', '=', row.alert_id).execute();
        if (published) deps.log.info({ alertId: row.alert_id, tenant: event.tenant, threshold: event.data.threshold }, 'budget alert published');
        else deps.log.info({ alertId: row.alert_id }, 'budget alert was published before; not again');
      }
    }
  };

  const kick = () => {
    if (running) {
      again = true;
      return;
    }
    again = false;
    running = drain()
      .catch(async (err: unknown) => {
        deps.log.warn({ err }, 'could not send budget alerts; retrying');
        again = true;
        await new Promise((r) => setTimeout(r, RETRY_MS).unref());
      })
      .finally(() => {
        running = undefined;
        if (again && !stopping) kick();
      });
  };

  return {
    kick,
    async idle() {
      while (running) await running;
    },
    async stop() {
      stopping = true;
      await running;
    },
  };
}
