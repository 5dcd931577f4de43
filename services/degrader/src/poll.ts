import type { KV } from '@nats-io/kv';
import { getJson, type Bus } from '@sluice/bus';
import { BudgetKeys, budgetsFor, Consumers, invokerConsumer, LANES, Topology, type BudgetSpend, type SluiceConfig } from '@sluice/contracts';
import type { Backlog, BudgetBurn } from './signals.js';

/** The request path's durables, in order: a request waits in one of them when the stage behind it cannot keep up. */
const REQUEST_PATH = [Consumers.limiter.durable, Consumers.cacheLookup.durable, Consumers.router.durable, ...LANES.map((l) => invokerConsumer(l).durable)];

/**
 * Messages waiting (`num_pending`: not yet delivered) summed over the request path's durables.
 * One consumer-info request per durable; a durable that does not exist yet counts 0.
 */
export async function readBacklog(bus: Pick<Bus, 'jsm'>, now: number): Promise<Backlog> {
  const pending = await Promise.all(
    REQUEST_PATH.map((durable) =>
      bus.jsm.consumers.info(Topology.stream.name, durable).then(
        (info) => info.num_pending,
        () => 0,
      ),
    ),
  );
  return { at: now, pending: pending.reduce((a, b) => a + b, 0) };
}

/** Before this share of its window has gone, a budget counts as burning only once it has spent this share of its limit. */
const MIN_ELAPSED_SHARE = 0.25;

/**
 * Whether a budget is on course to overrun its window: it has spent a larger share of its limit
 * than the share of its window gone (at least MIN_ELAPSED_SHARE, so the first requests of a day
 * do not count as a burn).
 */
export function isBurning(spentNanos: number, limitNanos: number, period: { startsAt: number; resetsAt: number }, now: number): boolean {
  if (limitNanos <= 0) return spentNanos > 0;
  const gone = (now - period.startsAt) / Math.max(1, period.resetsAt - period.startsAt);
  return spentNanos / limitNanos >= Math.max(MIN_ELAPSED_SHARE, Math.min(1, gone));
}

/**
 * The tenant-scope budgets of the config, each read from its spend record in `sluice_budgets`
 * (the ledger's exact spend, `BudgetKeys.spend`). Per-user, per-feature and per-key budgets are
 * left out: each is one subject's limit, which the limiter enforces; a tenant's is the bill the
 * gateway runs up. One KV get per tenant budget.
 */
export async function readBudgetBurn(kv: KV, config: SluiceConfig, now: number): Promise<BudgetBurn> {
  // a subject with no user, feature or key has exactly its tenant's tenant-scope budgets
  const budgets = config.tenants.flatMap((t) => budgetsFor(config, { tenant: t.id }, now));
  const burning = await Promise.all(
    budgets.map(async (b) => {
      const spend = await getJson<BudgetSpend>(kv, BudgetKeys.spend(b.budgetKey, b.windowId)).catch(() => undefined);
      const spent = typeof spend?.value.spentNanos === 'number' ? spend.value.spentNanos : 0;
      return isBurning(spent, b.limitNanos, b, now);
    }),
  );
  return { at: now, burning: burning.filter(Boolean).length, total: budgets.length };
}
