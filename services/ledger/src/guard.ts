import { sql } from 'kysely';
import type { KV } from '@nats-io/kv';
import { rollBackCanary, type CanaryRollbacks } from '@sluice/bus';
import { EventType, makeEvent, ServiceName, SYSTEM_TENANT, type Canary, type EventDataOf, type SluiceEvent } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import type { Db } from './db.js';

/** One variant's requests that ended (completed or failed) in the guard's window. */
interface VariantWindow {
  variant: string;
  ended: number;
  failed: number;
}

type Verdict = EventDataOf<'canary.rolled_back'>;

const rate = (w: VariantWindow | undefined) => (w && w.ended > 0 ? w.failed / w.ended : 0);

/**
 * The guard's decision for one canary: the non-baseline variant (of those with at least
 * `minRequests` ended in the window) whose error rate exceeds the baseline's by more than
 * `maxErrorRateDelta`, the worst if several; undefined when none does or the canary has no guard.
 * A baseline with no ended requests counts as 0 % errors. Pure.
 *
 * @example
 * judgeCanary(canary, [{ variant: 'a', ended: 80, failed: 0 }, { variant: 'b', ended: 20, failed: 20 }])
 * // { canary: 'c1', variant: 'b', baseline: 'a', errorRate: 1, baselineErrorRate: 0, requests: 20, baselineRequests: 80, ... }
 */
export function judgeCanary(canary: Canary, windows: VariantWindow[]): Verdict | undefined {
  const { guard } = canary;
  if (!guard) return undefined;
  const minRequests = guard.minRequests ?? 20;
  const windowMs = guard.windowMs ?? 300_000;
  const baseline = windows.find((w) => w.variant === canary.baseline);
  const baselineErrorRate = rate(baseline);
  const worst = windows
    .filter((w) => w.variant !== canary.baseline && w.ended >= minRequests && rate(w) - baselineErrorRate > guard.maxErrorRateDelta)
    .sort((a, b) => rate(b) - rate(a))[0];
  if (!worst) return undefined;
  return {
    canary: canary.id,
    variant: worst.variant,
    baseline: canary.baseline,
    errorRate: round(rate(worst)),
    baselineErrorRate: round(baselineErrorRate),
    requests: worst.ended,
    baselineRequests: baseline?.ended ?? 0,
    windowMs,
    maxErrorRateDelta: guard.maxErrorRateDelta,
  };
}

const round = (x: number) => Math.round(x * 1e4) / 1e4;

/** The reason of a rollback, in words: for the control key, the event and the log. */
function rollbackReason(v: Verdict): string {
  const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
  return (
    `variant ${v.variant}'s error rate ${pct(v.errorRate)} (${v.requests} requests) exceeds baseline ${v.baseline}'s ${pct(v.baselineErrorRate)} ` +
    `(${v.baselineRequests} requests) by more than ${pct(v.maxErrorRateDelta)} over the last ${Math.round(v.windowMs / 1000)} s`
  );
}

/** Per variant of one canary, the requests that ended in the window (the partial index on canary, finished_at serves it). */
async function windowOf(db: Db, canary: string, since: Date): Promise<VariantWindow[]> {
  const rows = await db
    .selectFrom('requests')
    .select([
      'variant',
      sql<string>`count(*) filter (where outcome in ('completed', 'failed'))`.as('ended'),
      sql<string>`count(*) filter (where outcome = 'failed')`.as('failed'),
    ])
    .where('canary', '=', canary)
    .where('finished_at', '>=', since)
    .groupBy('variant')
    .execute();
  return rows.map((r) => ({ variant: r.variant ?? '', ended: Number(r.ended), failed: Number(r.failed) }));
}

export interface GuardDeps {
  db: Db;
  /** The control bucket, where a rollback is written (`canaries`, compare-and-set). */
  control: KV;
  canaries: () => readonly Canary[];
  /** The rollbacks already known (control.canaries()): those canaries are not judged again. */
  rolledBack: () => CanaryRollbacks;
  publish: (event: SluiceEvent<'canary.rolled_back'>) => Promise<void>;
  log: Logger;
}

/**
 * Judges every guarded canary not yet rolled back, over its window ending `now`; each one that
 * fails is written to the control key `canaries` (only the first writer wins, so of several
 * ledgers or passes one rolls it back) and its `canary.rolled_back` published. Returns the
 * verdicts this pass wrote. One grouped query per guarded canary.
 */
export async function guardCanaries(deps: GuardDeps, now: number): Promise<Verdict[]> {
  const done: Verdict[] = [];
  const known = deps.rolledBack();
  for (const canary of deps.canaries()) {
    if (!canary.guard || known[canary.id]) continue;
    const verdict = judgeCanary(canary, await windowOf(deps.db, canary.id, new Date(now - (canary.guard.windowMs ?? 300_000))));
    if (!verdict) continue;
    const reason = rollbackReason(verdict);
    if (!(await rollBackCanary(deps.control, canary.id, { at: now, variant: verdict.variant, reason }))) continue;
    // the id names the canary and the moment: a retried publish of this rollback is deduplicated
    const fields = { requestId: '', tenant: SYSTEM_TENANT, service: ServiceName.Ledger, at: now, reason: `canary ${canary.id} rolled back: ${reason}` };
    await deps.publish(makeEvent(EventType.CanaryRolledBack, { ...fields, suffix: `${canary.id}:${now}` }, verdict));
    deps.log.warn({ canary: canary.id, variant: verdict.variant, errorRate: verdict.errorRate }, fields.reason);
    done.push(verdict);
  }
  return done;
}

/**
 * Runs `guardCanaries` every `everyMs` (one pass at a time) until stopped. A pass that throws is
 * logged and the next one tries again: the guard must not take the ledger down.
 */
export function startCanaryGuard(deps: GuardDeps, everyMs: number, now: () => number = Date.now): { stop(): Promise<void> } {
  // a pass slower than the period is not stacked on: the tick it overlaps is skipped
  let running: Promise<void> | undefined;
  const timer = setInterval(() => {
    running ??= guardCanaries(deps, now())
      .then(() => undefined)
      .catch((err: unknown) => deps.log.error({ err }, 'canary guard pass failed'))
      .finally(() => (running = undefined));
  }, everyMs);
  return {
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}
