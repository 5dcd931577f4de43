import { sql } from 'kysely';
import type { KV } from '@nats-io/kv';
import { encodeJson, getJson } from '@sluice/bus';
import { BudgetKeys, type BudgetSpend } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import type { Db } from './db.js';
import type { SpendChange } from './spend-writes.js';
import { formatUsd, usdUnits } from './money.js';

/** Pause before writing again after NATS refused a write. */
const RETRY_MS = 1000;

export interface SpendKv {
  /** Queues counters' new absolutes; written soon, in the background, the latest of each. */
  changed(changes: SpendChange[]): void;
  /** Queues every counter of a window not yet over, as the database has it (at start: a crash may have lost the last writes). */
  republish(db: Db, position: number, now: number): Promise<void>;
  /** Resolves once everything queued is written (or the writer stops). */
  flushed(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Writes the ledger's budget counters to `sluice_budgets` (`BudgetKeys.spend`), where limiters
 * read them. The ledger is the only writer, so a plain put; writes run after the batch's commit,
 * off the projection's path, and a counter changed by several batches meanwhile is written once.
 *
 * A value is never replaced by one stamped with an earlier stream sequence: while a rebuild
 * replays the stream from the start, the counters it recomputes are lower than the ones the
 * limiters already have, and writing them would let budgets be overspent until it caught up.
 * The stored sequence is read once per counter per process (`seqs`).
 */
export function startSpendKv(kv: KV, log: Logger): SpendKv {
  const pending = new Map<string, BudgetSpend>();
  const seqs = new Map<string, number>();
  let running: Promise<void> | undefined;
  let stopping = false;

  const write = async (key: string, value: BudgetSpend) => {
    let stored = seqs.get(key);
    if (stored === undefined) stored = (await getJson<BudgetSpend>(kv, key))?.value.seq ?? -1;
    if (stored > value.seq) {
      seqs.set(key, stored);
      return;
    }
    await kv.put(key, encodeJson(value));
    seqs.set(key, value.seq);
  };

  const drain = async () => {
    while (pending.size && !stopping) {
      const batch = [...pending];
      pending.clear();
      const failed = await Promise.all(
        batch.map(([key, value]) =>
          write(key, value).then(
            () => undefined,
            (err: unknown) => ({ key, value, err }),
          ),
        ),
      );
      const retry = failed.filter((f) => f !== undefined);
      if (retry.length === 0) continue;
      log.warn({ err: retry[0]!.err, counters: retry.length }, 'could not write budget spend; retrying');
      for (const f of retry) if (!pending.has(f.key)) pending.set(f.key, f.value);
      await new Promise((r) => setTimeout(r, RETRY_MS).unref());
    }
  };
  const kick = () => {
    running ??= drain().finally(() => {
      running = undefined;
      if (pending.size && !stopping) kick();
    });
  };

  const changed = (changes: SpendChange[]) => {
    for (const c of changes) {
      const key = BudgetKeys.spend(c.budgetKey, c.windowId);
      const prev = pending.get(key);
      if (!prev || prev.seq <= c.spend.seq) pending.set(key, c.spend);
    }
    if (changes.length) kick();
  };
  const flushed = async () => {
    while (running) await running;
  };

  return {
    changed,
    async republish(db, position, now) {
      const { rows } = await sql<{ budget_key: string; window_id: string; spent_usd: string; spent_nanos: string | number; settled_nanos: string | number }>`
        select budget_key, window_id, spent_usd::text as spent_usd, spent_nanos, settled_nanos from budget_counters
        where budget is null or (budget->>'resetsAt')::bigint > ${now}`.execute(db);
      changed(
        rows.map((r) => ({
          budgetKey: r.budget_key,
          windowId: r.window_id,
          spend: { spentNanos: Number(r.spent_nanos), settledNanos: Number(r.settled_nanos), spentUsd: formatUsd(usdUnits(r.spent_usd)), seq: position },
        })),
      );
    },
    flushed,
    async stop() {
      await flushed();
      stopping = true;
    },
  };
}
