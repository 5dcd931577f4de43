import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Closer, ServiceContext } from '@sluice/bus';
import { Consumers, replayDurable, Topology } from '@sluice/contracts';
import { watchCircuits } from './circuits-kv.js';
import { followEvents } from './follow.js';
import { onAttempt, onCircuitEvent, onOverride } from './handlers.js';
import { holdLease, type HeldLease } from './lease-kv.js';
import type { DegraderLoop } from './loop.js';
import { openLoop } from './open-loop.js';
import { readBacklog, readBudgetBurn } from './poll.js';
import { watchOverride } from './record.js';

export interface Replica {
  loop: DegraderLoop;
  lease: HeldLease;
  holder: string;
  /** What to close, in reverse order: the tick, then the lease handed back, then the inputs. */
  closers: Array<Closer | { stop(): Promise<void> | void }>;
}

/**
 * One degrader replica, wired: the lease, an ordered consumer each for attempts and circuit
 * events (every replica sees every one, from a window back), the `sluice_circuits` records, the
 * override, and a tick that polls backlog and budgets (leader only: they cost requests) and steps
 * the loop. `tickMs` is 1 s in the service; tests go faster.
 */
export async function startReplica(ctx: Pick<ServiceContext, 'bus' | 'buckets' | 'control' | 'log'>, tickMs = 1000): Promise<Replica> {
  const { bus, buckets, control, log } = ctx;
  const config = () => control.config();
  const holder = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  await dropLegacyDurables(ctx);
  const lease = await holdLease(buckets.leases, { holder, leaseMs: () => config().degrader.leaseMs ?? 6000, log });
  const loop = await openLoop(ctx, () => lease.leading());
  const d = config().degrader;
  const attempts = await followEvents(bus, { filter: Consumers.degraderInvoke.filter, sinceMs: d.windowMs, log, onEvent: onAttempt(loop) });
  const circuitEvents = await followEvents(bus, {
    filter: Consumers.degraderCircuit.filter,
    sinceMs: Math.max(d.windowMs, config().invoker.circuitOpenMs),
    log,
    onEvent: onCircuitEvent(loop),
  });
  const circuitRecords = await watchCircuits(
    buckets.circuits,
    () => config().invoker.circuitOpenMs,
    (signal) => loop.signal(signal),
  );
  const override = await watchOverride(buckets.control, onOverride(loop));
  control.onChange(() => void loop.step());

  let lastPoll = 0;
  const poll = async (now: number) => {
    const dd = config().degrader;
    if (!lease.leading() || now - lastPoll < (dd.pollMs ?? 2000)) return;
    lastPoll = now;
    if ((dd.backlogMax ?? 0) > 0) loop.signal({ kind: 'backlog', backlog: await readBacklog(bus, now) });
    if ((dd.budgetBurnShare ?? 0) > 0) loop.signal({ kind: 'budgets', budgets: await readBudgetBurn(buckets.budgets, config(), now) });
  };
  const tick = setInterval(() => {
    void poll(Date.now())
      .catch((err: unknown) => log.warn({ err }, 'degrader: reading backlog or budgets failed; judged without them until they are read'))
      .finally(() => void loop.step());
  }, tickMs);
  return { loop, lease, holder, closers: [attempts, circuitEvents, circuitRecords, override, lease, () => clearInterval(tick)] };
}

/**
 * The shared durables the degrader used before it followed events per replica. Left alone they
 * would keep their position and unacked messages on the server for ever. A replica of the old
 * build still running during a rolling upgrade recreates them; the next start drops them again.
 */
async function dropLegacyDurables({ bus }: Pick<ServiceContext, 'bus'>): Promise<void> {
  for (const durable of [Consumers.degraderInvoke.durable, Consumers.degraderCircuit.durable]) {
    await bus.jsm.consumers.delete(Topology.stream.name, durable).catch(() => undefined);
    // and its dead letters' replay consumer (consumeReplays): nothing the degrader parks is worth a replay
    await bus.jsm.consumers.delete(Topology.deadLetters.name, replayDurable(durable)).catch(() => undefined);
  }
}
