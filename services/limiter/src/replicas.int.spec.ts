import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { createOnce, deleteOnce, encodeJson, isWrongRevision, updateOnce } from '@sluice/bus';
import { startNatsCluster, type LocalNatsCluster } from '@sluice/bus/nats-cluster';
import { freePort, startNats, type LocalNats } from '@sluice/bus/nats-server';
import { eventually } from '@sluice/bus/testing';
import { budgetPeriod, BudgetKeys, NANOS_PER_USD } from '@sluice/contracts';
import { BudgetCounters } from './counters.js';
import { serviceLeases } from './leases.js';
import type { Decision, Limits } from './limiter.js';
import { limitKeys, LimitStore } from './store.js';

// Issue 16.2: three limiter replicas must hold a tenant within 1 % of its limit, also after
// replicas were killed and restarted. Each replica here is a LimitStore on a connection of its
// own, with the service's leases (serviceLeases, as main.ts); a killed one is dropped mid-burst with its leases
// and connection, as SIGKILL leaves it, and its unanswered requests go to the others (as the
// durable consumer redelivers them). The clock is one shared, frozen `now`: nothing refills
// during a burst, so the bound is exactly a full bucket, 1 % and the last whole request.
const TIGHT = { requestsPerMinute: 120, tokensPerMinute: 100_000_000 };
const limits: Limits = { tenant: TIGHT, global: { requestsPerMinute: 10_000_000, tokensPerMinute: 10_000_000_000 } };
const BURST = 3 * TIGHT.requestsPerMinute;
const MOST = Math.floor(TIGHT.requestsPerMinute * 1.01) + 1;

interface Replica {
  nc: NatsConnection;
  store: LimitStore;
  dead: boolean;
}

async function openBucket(url: string, bucket: string): Promise<{ nc: NatsConnection; kv: KV }> {
  const nc = await connect({ servers: url.split(','), maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  return { nc, kv: await new Kvm(jetstream(nc)).open(bucket) };
}

class Replicas {
  readonly all: Replica[] = [];
  clock = 1_000_000;

  constructor(
    private readonly url: string,
    private readonly bucket: string,
  ) {}

  async start(i: number): Promise<void> {
    const { nc, kv } = await openBucket(this.url, this.bucket);
    this.all[i] = { nc, store: new LimitStore(kv, { now: () => this.clock, lease: serviceLeases }), dead: false };
  }

  /** As SIGKILL: no lease given back, the connection gone with whatever was in flight on it. */
  async kill(i: number): Promise<void> {
    const r = this.all[i]!;
    r.dead = true;
    await r.nc.close();
  }

  /** One request, on replica `i` or, when that one is dead or dies meanwhile, the next live one. */
  async admit(tenant: string, i: number): Promise<Decision> {
    for (let tries = 0; ; tries++) {
      const r = this.all[(i + tries) % this.all.length]!;
      if (r.dead) continue;
      try {
        return await r.store.admit(limitKeys(tenant), limits, 10);
      } catch (e) {
        if (!r.dead || tries > 10) throw e;
      }
    }
  }

  /**
   * BURST requests for `tenant` spread over the replicas, in waves of 30 a few ms apart (as a
   * durable consumer hands them out); `during` runs once a third of them were decided.
   */
  async burst(tenant: string, during?: () => Promise<void>): Promise<number> {
    let decided = 0;
    let midway: Promise<void> | undefined;
    const decisions = await Promise.all(
      Array.from({ length: BURST }, async (_, n) => {
        await new Promise((r) => setTimeout(r, Math.floor(n / 30) * 3));
        const d = await this.admit(tenant, n);
        if (++decided === BURST / 3 && during) midway = during();
        return d;
      }),
    );
    await midway;
    return decisions.filter((d) => d.admitted).length;
  }

  async stop(): Promise<void> {
    await Promise.all(this.all.filter((r) => !r.dead).map((r) => r.nc.close()));
  }
}

for (const shape of ['a single nats-server', 'a three-node nats-server cluster'] as const) {
  describe(`three limiters on ${shape}`, () => {
    const clustered = shape !== 'a single nats-server';
    let dir: string;
    let single: LocalNats | undefined;
    let cluster: LocalNatsCluster | undefined;
    let url: string;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sluice-limiter-replicas-'));
      if (clustered) {
        cluster = await startNatsCluster(dir);
        url = cluster.url;
      } else {
        single = await startNats(dir, await freePort());
        url = single.url;
      }
    });
    afterAll(async () => {
      await single?.stop();
      await cluster?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    async function newBucket(name: string): Promise<void> {
      const nc = await connect({ servers: url.split(',') });
      // a cluster that has just elected its meta leader may not know every peer yet
      await eventually(() => new Kvm(jetstream(nc)).create(name, { history: 1, replicas: clustered ? 3 : 1 }), 30_000, { what: `bucket ${name}` });
      await nc.close();
    }

    it('lets one of three simultaneous compare-and-sets of one revision win', async () => {
      await newBucket('cas');
      const writers = await Promise.all([0, 1, 2].map(() => openBucket(url, 'cas')));
      let plainRaces = 0;
      let onceRaces = 0;
      const winners = (write: (kv: KV, i: number, rev: number) => Promise<number>, rev: number) =>
        Promise.all(
          writers.map(({ kv }, i) =>
            write(kv, i, rev).then(
              () => 1,
              (e: unknown) => {
                if (!isWrongRevision(e)) throw e;
                return 0;
              },
            ),
          ),
        ).then((won) => won.reduce((a, b) => a + b, 0));
      for (let round = 0; round < 50; round++) {
        const rev = await writers[0]!.kv.put('k', encodeJson(round));
        if ((await winners((kv, i, r) => kv.update('k', encodeJson(i), r), rev)) > 1) plainRaces++;
        const next = await writers[0]!.kv.put('k', encodeJson(round));
        const won = await winners((kv, i, r) => updateOnce(kv, 'k', encodeJson(i), r), next);
        expect(won).toBe(1);
        if (won > 1) onceRaces++;
      }
      console.log(JSON.stringify({ shape, rounds: 50, plainUpdateWithSeveralWinners: plainRaces, updateOnceWithSeveralWinners: onceRaces }));
      await Promise.all(writers.map(({ nc }) => nc.close()));
    });

    it('lets one of three simultaneous creates of a key win', async () => {
      await newBucket('cas-create');
      const writers = await Promise.all([0, 1, 2].map(() => openBucket(url, 'cas-create')));
      const count = (ps: Promise<unknown>[]) =>
        Promise.all(
          ps.map((p) =>
            p.then(
              () => 1,
              (e: unknown) => {
                if (!isWrongRevision(e)) throw e;
                return 0;
              },
            ),
          ),
        ).then((won) => won.reduce((a, b) => a + b, 0));
      let plainSeveral = 0;
      let onceSeveral = 0;
      for (let round = 0; round < 30; round++) {
        if ((await count(writers.map(({ kv }, i) => kv.create(`plain.${round}`, encodeJson(i))))) > 1) plainSeveral++;
        const won = await count(writers.map(({ kv }, i) => createOnce(kv, `once.${round}`, encodeJson(i))));
        if (won > 1) onceSeveral++;
        expect(won).toBe(1);
      }
      console.log(JSON.stringify({ shape, rounds: 30, plainCreateWithSeveralWinners: plainSeveral, createOnceWithSeveralWinners: onceSeveral }));
      await Promise.all(writers.map(({ nc }) => nc.close()));
    });

    it('lets one of a compare-and-set delete and an update of one revision win, and keeps what won', async () => {
      await newBucket('cas-delete');
      const [a, b] = await Promise.all([openBucket(url, 'cas-delete'), openBucket(url, 'cas-delete')]);
      const won = (p: Promise<unknown>) =>
        p.then(
          () => true,
          (e: unknown) => {
            if (!isWrongRevision(e)) throw e;
            return false;
          },
        );
      const deletes: boolean[] = [];
      let plainBothWon = 0;
      for (let round = 0; round < 30; round++) {
        // the same race with nats.js's own compare-and-set delete and update, for comparison
        const plain = await a.kv.put('k', encodeJson(round));
        const both = await Promise.all([won(a.kv.delete('k', { previousSeq: plain })), won(b.kv.update('k', encodeJson('follower'), plain))]);
        if (both.every(Boolean)) plainBothWon++;
        const rev = await a.kv.put('k', encodeJson(round));
        // a coalescing leader releasing its record while a follower takes it over
        const [deleted, updated] = await Promise.all([won(deleteOnce(a.kv, 'k', rev)), won(updateOnce(b.kv, 'k', encodeJson('follower'), rev))]);
        expect([deleted, updated].filter(Boolean)).toHaveLength(1);
        deletes.push(deleted);
        // the key holds what won (read until a replica behind the leader has caught up)
        await eventually(async () => ((await a.kv.get('k'))?.operation === 'DEL') === deleted && (await a.kv.get('k'))!.revision > rev);
      }
      console.log(JSON.stringify({ shape, rounds: 30, deleteWon: deletes.filter(Boolean).length, updateWon: deletes.filter((d) => !d).length, plainBothWon }));
      await Promise.all([a.nc.close(), b.nc.close()]);
    });

    it("reserve a budget's limit exactly, three at once", async () => {
      await newBucket('budgets');
      const counters = await Promise.all(
        [0, 1, 2].map(async () => {
          const { nc, kv } = await openBucket(url, 'budgets');
          const c = new BudgetCounters(kv);
          await c.start();
          return { nc, c };
        }),
      );
      const ref = {
        budget: 'exact',
        scope: 'tenant' as const,
        budgetKey: 'replicas.exact',
        window: 'daily' as const,
        limitUsd: 1,
        limitNanos: NANOS_PER_USD,
        action: 'refuse' as const,
        thresholds: [1],
        ...budgetPeriod('daily', Date.now()),
      };
      try {
        // 600 reservations of $0.002 against $1, in waves across three replicas: 500 fit
        const results = await Promise.all(
          Array.from({ length: 600 }, async (_, i) => {
            await new Promise((r) => setTimeout(r, Math.floor(i / 30) * 3));
            return counters[i % 3]!.c.reserve([ref], 2_000_000);
          }),
        );
        const reader = await openBucket(url, 'budgets');
        const counter = (await reader.kv.get(BudgetKeys.admitted(ref.budgetKey, ref.windowId)))?.json<number>();
        await reader.nc.close();
        console.log(JSON.stringify({ shape, budgetReservations: results.filter((r) => r.reserved).length, of: 500, counterNanos: counter }));
        expect(results.filter((r) => r.reserved)).toHaveLength(500);
        expect(counter).toBe(NANOS_PER_USD);
      } finally {
        for (const { nc, c } of counters) {
          c.stop();
          await nc.close();
        }
      }
    });

    it('hold a tenant within 1 % of its limit through replicas killed mid-burst and between bursts', async () => {
      const bucket = `limits_${clustered ? 'cluster' : 'single'}`;
      await newBucket(bucket);
      const replicas = new Replicas(url, bucket);
      await Promise.all([0, 1, 2].map((i) => replicas.start(i)));
      const admitted: Record<string, number> = {};
      try {
        // every replica takes a block from a nearly full bucket, which refills to full meanwhile:
        // the blocks are given back onto a full bucket, which must not count them twice (a lease
        // is spent only until its bucket could have refilled it, see serviceLeases)
        for (let i = 0; i < 3; i++) await replicas.admit('warm', i);
        replicas.clock += 3000;
        await eventually(() => replicas.all.every((r) => r.store.leasesHeld === 0), 10_000, { what: 'every block given back' });
        admitted.warm = await replicas.burst('warm');
        // cold keys, as the cluster chaos spec's tenant: first writes of three replicas at once
        admitted.cold1 = await replicas.burst('cold1');
        admitted.cold2 = await replicas.burst('cold2');
        // replica 0 dies a third of the way through a burst and comes back after it
        admitted.killedMidway = await replicas.burst('killed', () => replicas.kill(0));
        await replicas.start(0);
        // the killed tenant's bucket refilled: a minute later it is full again
        replicas.clock += 60_000;
        admitted.refilledAfterKill = await replicas.burst('killed');
        // two replicas die between bursts and come back with nothing cached and no leases
        await replicas.kill(1);
        await replicas.kill(2);
        await Promise.all([replicas.start(1), replicas.start(2)]);
        admitted.afterRestarts = await replicas.burst('cold3');
        admitted.afterRestarts2 = await replicas.burst('cold4');
        replicas.clock += 60_000;
        admitted.refilledAfterRestarts = await replicas.burst('cold3');
      } finally {
        await replicas.stop();
      }
      console.log(JSON.stringify({ shape, limitPerMinute: TIGHT.requestsPerMinute, burst: BURST, most: MOST, admitted }));
      // a killed replica's lost lease and a write it made but never heard back about only ever
      // throttle more (its requests are debited again elsewhere): only the top is bounded
      expect(Object.entries(admitted).filter(([, n]) => n > MOST)).toEqual([]);
    });
  });
}
