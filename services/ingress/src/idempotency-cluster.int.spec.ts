// Idempotency-Key on a three-node NATS cluster (streams and buckets at 3 replicas), where the
// chaos run saw retries with one key run twice and refused 500 (docs/cluster.md). Each test is one
// way a retry could run again or fail: a stored answer lost while SLUICE_RESULTS had no leader,
// two takeovers of one revision that both won on nats-server 2.9.10, and a store that cannot be
// reached. claimOrReplay runs on the real store and the real result stream; nothing is mocked.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answer, awaitResult, connectBus, ensureTopology, resultMark, sendReply, type Bus, type Buckets } from '@sluice/bus';
import { startNatsCluster, type LocalNatsCluster } from '@sluice/bus/nats-cluster';
import { eventually } from '@sluice/bus/testing';
import { idempotencyBucketKey, SluiceError, Subjects, Topology, type ChatReply } from '@sluice/contracts';
import { answer as upstreamAnswer, chatResult } from '@sluice/contracts/testing';
import { claimOrReplay, idempotencyStore, requestFingerprint, type ClaimDeps, type IdempotencyRecord } from './idempotency.js';

let dir: string;
let cluster: LocalNatsCluster;
let bus: Bus;
let buckets: Buckets;
let deps: ClaimDeps;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-idem-cluster-'));
  cluster = await startNatsCluster(dir);
  bus = await connectBus(cluster.url, 'idempotency-cluster-test');
  // the meta leader may not know every peer yet ("no suitable peers for placement")
  buckets = await eventually(() => ensureTopology(bus, { replicas: 3 }), 60_000, { what: 'the topology at 3 replicas' });
  deps = { idempotency: idempotencyStore(buckets.idempotency), awaitResult: (tenant, id, until) => awaitResult(bus, tenant, id, until) };
}, 120_000);

afterAll(async () => {
  await bus?.nc.close();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const TENANT = 'acme';
const body = { messages: [{ role: 'user', content: 'once' }] };
const record = (requestId: string, deadline = Date.now() + 5000): IdempotencyRecord => ({
  requestId,
  fingerprint: requestFingerprint('chat.completions', body),
  deadline,
});
const completion = (requestId: string): ChatReply => chatResult(requestId, upstreamAnswer('small', 4, 3, 'the one answer'));

async function leaderOf(stream: string): Promise<string> {
  return eventually(async () => (await bus.jsm.streams.info(stream)).cluster?.leader ?? false, 30_000, { what: `a leader of ${stream}` });
}

/** Kills the node leading `stream`, runs `during` while it is down, restarts it and waits until the stream is current everywhere. */
async function withLeaderDown<T>(stream: string, during: () => Promise<T>): Promise<T> {
  const leader = await leaderOf(stream);
  await cluster.kill(leader);
  try {
    return await during();
  } finally {
    await cluster.restart(leader);
    await eventually(
      async () => {
        const info = await bus.jsm.streams.info(stream);
        return (info.cluster?.replicas ?? []).length === 2 && info.cluster!.replicas!.every((r) => r.current && !r.offline);
      },
      60_000,
      { what: `${stream} current on every node` },
    );
  }
}

describe('Idempotency-Key on a three-node cluster', () => {
  it("stores a kept answer while the result stream's leader is down, and replays it to the retry", async () => {
    const firsts = Array.from({ length: 20 }, (_, i) => `req_kept${Date.now()}${i}`);
    const claims = await Promise.all(firsts.map((id) => claimOrReplay(deps, TENANT, `kept-${id}`, record(id, Date.now() + 20_000), 'idempotency-key')));
    expect(claims.every((c) => c.kind === 'run')).toBe(true);
    const kept = { ...resultMark(TENANT, { keepResult: true }) };
    // the old way, core NATS into the stream, beside the acked way, both at the moment the leader dies
    const coreIds = firsts.map((id) => `${id}core`);
    await withLeaderDown(Topology.results.name, async () => {
      for (const id of coreIds) sendReply(bus.nc, `_INBOX.gone.${id}`, completion(id), kept);
      await Promise.all(firsts.map((id) => answer(bus, `_INBOX.gone.${id}`, completion(id), kept)));
    });
    const storedByCore = (await Promise.all(coreIds.map((id) => awaitResult(bus, TENANT, id, Date.now())))).filter(Boolean).length;
    console.log(JSON.stringify({ keptAnswers: firsts.length, storedWithAck: firsts.length, storedByCorePublish: storedByCore }));

    // every retry (another try of the same key and body) gets the first try's answer: none runs again
    const retries = await Promise.all(firsts.map((id, i) => claimOrReplay(deps, TENANT, `kept-${id}`, record(`req_retry${i}`), 'idempotency-key')));
    expect(retries.map((c) => (c.kind === 'replay' ? c.requestId : 'ran again'))).toEqual(firsts);
  }, 180_000);

  it('lets one of several retries that take a key over at once run, the others wait for it', async () => {
    const rounds = 20;
    let moreThanOne = 0;
    for (let round = 0; round < rounds; round++) {
      const key = `over-${Date.now()}-${round}`;
      // the first try ended with an answer a retry may mend: every retry takes the key over
      const first = `req_first${round}`;
      await claimOrReplay(deps, TENANT, key, record(first), 'idempotency-key');
      await answer(
        bus,
        Subjects.result(first),
        { requestId: first, error: { code: 'upstream_failed', message: 'try again', status: 502 } },
        { tenant: TENANT },
      );
      const tries = await Promise.all(
        [0, 1, 2].map((i) =>
          Promise.race([
            claimOrReplay(deps, TENANT, key, record(`req_try${round}x${i}`), 'idempotency-key').catch((e: unknown) =>
              e instanceof SluiceError ? e.code : String(e),
            ),
            // a try that lost waits for the winner's answer, which this test never sends
            new Promise<'waiting'>((r) => setTimeout(() => r('waiting'), 1500)),
          ]),
        ),
      );
      const ran = tries.filter((t) => typeof t === 'object' && t !== null && 'kind' in t && t.kind === 'run').length;
      expect(ran).toBe(1);
      if (ran > 1) moreThanOne++;
    }
    console.log(JSON.stringify({ rounds, roundsWithMoreThanOneRun: moreThanOne }));
  }, 180_000);

  it('refuses a try service_busy (503, Retry-After) while the store cannot be reached, and claims it once the cluster is back', async () => {
    const key = `unreachable-${Date.now()}`;
    const bucketKey = idempotencyBucketKey(TENANT, key);
    // two of three nodes down: no stream has a quorum, nothing can be written or read for sure
    const down = cluster.nodes.map((n) => n.name).slice(0, 2);
    for (const n of down) await cluster.kill(n);
    try {
      const refused = await claimOrReplay(deps, TENANT, key, record('req_unsure'), 'idempotency-key').catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(SluiceError);
      expect(refused).toMatchObject({ code: 'service_busy', status: 503 });
      expect((refused as SluiceError).retryAfterMs).toBeGreaterThan(0);
    } finally {
      for (const n of down) await cluster.restart(n);
    }
    const claim = await eventually(() => claimOrReplay(deps, TENANT, key, record('req_sure'), 'idempotency-key'), 60_000, {
      what: 'a claim once the cluster is back',
    });
    expect(claim.kind).toBe('run');
    // the refused try took nothing: the key names the try that ran
    expect((await deps.idempotency.get(bucketKey))?.record.requestId).toBe('req_sure');
  }, 180_000);
});
