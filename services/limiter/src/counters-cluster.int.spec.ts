import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { Bucket, Kvm, type KV } from '@nats-io/kv';
import { encodeJson, updateOnce } from '@sluice/bus';
import { startNatsCluster, type LocalNatsCluster } from '@sluice/bus/nats-cluster';
import { freePort, startNats, type LocalNats } from '@sluice/bus/nats-server';
import { eventually } from '@sluice/bus/testing';
import { budgetPeriod, BudgetKeys } from '@sluice/contracts';
import { BudgetCounters } from './counters.js';

// One hot budget counter (as `admitted.dev.monthly` in the cluster chaos runs E and F,
// docs/cluster.md) written by three limiter replicas, each on a connection to a different node of
// a three-node cluster: every reservation must be made (none given up after `maxRounds` lost
// compare-and-sets) and the counter must end at exactly their sum. Each replica has a few
// reservations in flight at a time, so nearly every write races the other two replicas'.
const REPLICAS = 3;
const WORKERS = Number(process.env.COUNTERS_WORKERS ?? 5);
const EACH = Number(process.env.COUNTERS_EACH ?? 100);
const NANOS = 1_000;

/** The one hot budget every replica reserves on (`admitted.dev.monthly`), its limit far away. */
function hotBudget() {
  return {
    budget: 'hot',
    scope: 'tenant' as const,
    budgetKey: 'dev',
    window: 'monthly' as const,
    limitUsd: 1_000_000,
    limitNanos: 1e15,
    action: 'refuse' as const,
    thresholds: [1],
    ...budgetPeriod('monthly', Date.now()),
  };
}

for (const shape of ['a single nats-server', 'a three-node nats-server cluster'] as const) {
  describe(`one budget counter written by three replicas on ${shape}`, () => {
    const clustered = shape !== 'a single nats-server';
    let dir: string;
    let single: LocalNats | undefined;
    let cluster: LocalNatsCluster | undefined;
    let urls: string[];

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sluice-limiter-counters-'));
      if (clustered) {
        cluster = await startNatsCluster(dir);
        urls = cluster.nodes.map((n) => n.url);
      } else {
        single = await startNats(dir, await freePort());
        urls = [single.url, single.url, single.url];
      }
    });
    afterAll(async () => {
      await single?.stop();
      await cluster?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('makes every reservation and counts exactly their sum', async () => {
      const setup = await connect({ servers: urls[0]! });
      // KV buckets default to allow_direct: a `kv.get` may be answered by any replica
      await eventually(() => new Kvm(jetstream(setup)).create('budgets', { history: 1, replicas: clustered ? 3 : 1 }), 30_000, { what: 'bucket budgets' });
      await setup.close();

      const replicas: { nc: NatsConnection; c: BudgetCounters }[] = [];
      for (let i = 0; i < REPLICAS; i++) {
        // each replica on one node only, as limiters spread over a cluster's nodes
        const nc = await connect({ servers: urls[i]!, ignoreClusterUpdates: true });
        // as topology.ts opens it: `create` reads the stream's config and so gets with direct gets
        // (`open` binds without it and gets through the stream leader)
        const kv = await new Kvm(jetstream(nc)).create('budgets', { history: 1, replicas: clustered ? 3 : 1 });
        expect((kv as Bucket).direct).toBe(true);
        const c = new BudgetCounters(kv);
        await c.start();
        replicas.push({ nc, c });
      }
      const ref = hotBudget();
      try {
        const outcomes = await Promise.allSettled(
          replicas.flatMap(({ c }) =>
            Array.from({ length: WORKERS }, async () => {
              for (let n = 0; n < EACH; n++) {
                const r = await c.reserve([ref], NANOS);
                if (!r.reserved) throw new Error('refused under a limit it is far from');
              }
            }),
          ),
        );
        const failed = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
        const reader = await connect({ servers: urls[0]! });
        const counter = (await (await new Kvm(jetstream(reader)).open('budgets')).get(BudgetKeys.admitted(ref.budgetKey, ref.windowId)))?.json<number>();
        await reader.close();
        const stats = replicas.map(({ c }) => c.stats);
        const tried = stats.reduce((a, s) => a + s.tried, 0);
        const won = stats.reduce((a, s) => a + s.won, 0);
        console.log(
          JSON.stringify({
            shape,
            reservations: REPLICAS * WORKERS * EACH,
            workersFailed: failed.length,
            firstFailure: failed[0] && String(failed[0].reason),
            batchesGaveUp: stats.map((s) => s.gaveUp),
            mostRounds: stats.map((s) => s.mostRounds),
            writesTried: tried,
            writesWon: won,
            roundsPerWonWrite: won ? Number((tried / won).toFixed(2)) : undefined,
            counterNanos: counter,
          }),
        );
        expect(failed.map((f) => String(f.reason))).toEqual([]);
        expect(stats.map((s) => s.gaveUp)).toEqual([0, 0, 0]);
        expect(counter).toBe(REPLICAS * WORKERS * EACH * NANOS);
      } finally {
        for (const { nc, c } of replicas) {
          c.stop();
          await nc.close();
        }
      }
    });
  });
}

// The same hot counter while the node leading the bucket's stream is SIGKILLed and restarted, as
// in the cluster chaos run (where batches of hundreds of admissions gave up after `maxRounds` lost
// compare-and-sets for a minute after the kills). Each replica's connection knows every node.
describe('one budget counter written by three replicas through the kill of its bucket leader', () => {
  let dir: string;
  let cluster: LocalNatsCluster;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-limiter-counters-kill-'));
    cluster = await startNatsCluster(dir);
  });
  afterAll(async () => {
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('gives no batch up, and the counter holds at least every reservation made', async () => {
    const urls = cluster.nodes.map((n) => n.url);
    const setup = await connect({ servers: urls });
    await eventually(() => new Kvm(jetstream(setup)).create('budgets', { history: 1, replicas: 3 }), 30_000, { what: 'bucket budgets' });
    const replicas: { nc: NatsConnection; c: BudgetCounters; kv: KV }[] = [];
    for (let i = 0; i < REPLICAS; i++) {
      // each replica first on its own node, reconnecting to the others
      const nc = await connect({ servers: [...urls.slice(i), ...urls.slice(0, i)], noRandomize: true, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
      const kv = await new Kvm(jetstream(nc)).create('budgets', { history: 1, replicas: 3 });
      const c = new BudgetCounters(kv);
      await c.start();
      replicas.push({ nc, c, kv });
    }
    const ref = hotBudget();
    let made = 0;
    const errors: Record<string, number> = {};
    const until = Date.now() + 20_000;
    try {
      const work = replicas.flatMap(({ c }) =>
        Array.from({ length: 20 }, async () => {
          while (Date.now() < until) {
            try {
              if ((await c.reserve([ref], NANOS)).reserved) made++;
            } catch (e) {
              // as the limiter: the admission is redelivered a little later
              const what = `${String(e).slice(0, 40)} @${Math.floor((Date.now() - until + 20_000) / 1000)}s`;
              errors[what] = (errors[what] ?? 0) + 1;
              await new Promise((r) => setTimeout(r, 250));
            }
          }
        }),
      );
      const jsm = await jetstream(setup).jetstreamManager();
      await new Promise((r) => setTimeout(r, 3000));
      const leader = (await jsm.streams.info('KV_budgets')).cluster!.leader!;
      await cluster.kill(leader);
      await new Promise((r) => setTimeout(r, 6000));
      await cluster.restart(leader);
      await Promise.all(work);
      const counter = (await (await new Kvm(jetstream(setup)).open('budgets')).get(BudgetKeys.admitted(ref.budgetKey, ref.windowId)))?.json<number>() ?? 0;
      const stats = replicas.map(({ c }) => c.stats);
      // after the restart: of three compare-and-sets of one revision at once, how many rounds had two winners
      let severalWon = 0;
      for (let round = 0; round < 30; round++) {
        const rev = await replicas[0]!.kv.put('after', encodeJson(round));
        const won = await Promise.all(
          replicas.map(({ kv }, i) =>
            updateOnce(kv, 'after', encodeJson(i), rev).then(
              () => 1,
              () => 0,
            ),
          ),
        );
        if (won.reduce((a: number, b) => a + b, 0) > 1) severalWon++;
      }
      console.log(
        JSON.stringify({
          afterRestartRoundsWithSeveralWinners: severalWon,
          killed: leader,
          leaderAfter: (await jsm.streams.info('KV_budgets')).cluster?.leader,
          connectedTo: replicas.map(({ nc }) => nc.info?.server_name),
          made,
          counterNanos: counter,
          overCountedNanos: counter - made * NANOS,
          batchesGaveUp: stats.map((s) => s.gaveUp),
          mostRounds: stats.map((s) => s.mostRounds),
          writesTried: stats.reduce((a, s) => a + s.tried, 0),
          writesWon: stats.reduce((a, s) => a + s.won, 0),
          errors,
        }),
      );
      expect(stats.map((s) => s.gaveUp)).toEqual([0, 0, 0]);
      // a write stored whose ack was lost fails its reservations, which are made again: counted twice, never lost
      expect(counter).toBeGreaterThanOrEqual(made * NANOS);
    } finally {
      for (const { nc, c } of replicas) {
        c.stop();
        await nc.close();
      }
      await setup.close();
    }
  });
});
