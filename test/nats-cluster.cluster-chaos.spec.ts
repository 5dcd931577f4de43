import { randomUUID } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { SluiceClient } from '@sluice/client';
import { hashKey, idempotencyBucketKey, isRetryableStatus, Subjects, Topology, type EventType } from '@sluice/contracts';
import { freePort } from '@sluice/bus/nats-server';
import { leaderViews, startNatsCluster, type LocalNatsCluster } from '@sluice/bus/nats-cluster';
import { eventually } from '@sluice/bus/testing';
import { ALL_SERVICES } from '@sluice/scripts/stack';
import { DEV_KEY, defaultConfig, sleep, startE2eStack, type E2eStack } from './harness.js';
import {
  auditRequests,
  billing,
  eventsOf,
  expectBilledExactlyOnce,
  streamEvents,
  httpCall,
  loadLoop,
  natsCall,
  prompt,
  tally,
  type Outcome,
} from './chaos-kit.js';

// The stack on a three-node NATS cluster (streams and buckets at 3 replicas, every service in
// REPLICAS processes, ingress behind a client-side round robin as behind a load balancer). While
// steady traffic flows through both doors, the event stream's leader node is SIGKILLed and
// restarted, then another node, then the leader again, and service processes are SIGKILLed at
// random (their supervisor restarts them). Clients retry what a retry may fix with the same
// Idempotency-Key. Nothing may be lost or charged twice, the ledger must bill exactly what the
// upstream served, and three limiters must hold a tenant to its limit within 1 %.
const REPLICAS = Number(process.env.SLUICE_CHAOS_REPLICAS ?? 3);
const PACE_MS = 100; // ~10 req/s per front door
const CLIENT_TIMEOUT_MS = 20_000;
const MAX_ATTEMPTS = 8;
const NODE_DOWN_MS = 8000;
const SERVICE_KILL_EVERY_MS = 3000;
// SLUICE_CHAOS_KILLS=nodes or services: only that kind of kill (both by default), to tell which one
// a finding needs (docs/cluster.md: the limiter burst over-admits only after the chaos phase)
const KILLS = process.env.SLUICE_CHAOS_KILLS ?? 'both';
const KILL_NODES = KILLS !== 'services';
const KILL_SERVICES = KILLS !== 'nodes';
// three tenants, one burst each, one after another: an over-admission after the chaos phase came
// in about one run of three with one burst (docs/cluster.md)
const TIGHT = [1, 2, 3].map((n) => ({ id: `tight-${n}`, key: `sk-cluster-tight-${n}`, requestsPerMinute: 120 }));
const TIGHT_CALLS = 360;
/** What a burst's call may be refused, besides answered: the limiter's 429, or a refusal at ingress before it. */
const NOT_ADMITTED = new Set(['rate_limit_exceeded', 'request_timeout', 'service_busy']);

let dir: string;
let cluster: LocalNatsCluster;
let stack: E2eStack;
let nc: NatsConnection;
let ingressUrls: string[];
const chaosLog = process.env.SLUICE_CHAOS_LOG ? createWriteStream(process.env.SLUICE_CHAOS_LOG) : undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-cluster-chaos-'));
  cluster = await startNatsCluster(dir);
  const config = defaultConfig();
  const plenty = { requestsPerMinute: 10_000_000, tokensPerMinute: 10_000_000_000 };
  config.limits = { global: plenty, tenantDefault: plenty, userDefault: plenty };
  for (const t of TIGHT)
    config.tenants.push({ id: t.id, keySha256: [hashKey(t.key)], limits: { requestsPerMinute: t.requestsPerMinute, tokensPerMinute: 100_000_000 } });
  // as in crash.chaos: a static fallback answer is not served by the upstream and would muddle the token comparison
  config.degrader = { ...config.degrader, minSamples: 1_000_000 };
  // every replica of ingress and of the ledger on a port of its own
  const ports = async () => Promise.all(Array.from({ length: REPLICAS }, () => freePort()));
  const [ingressPorts, ledgerPorts] = [await ports(), await ports()];
  ingressUrls = ingressPorts.map((p) => `http://127.0.0.1:${p}/v1`);
  stack = await startE2eStack({
    config,
    privateNatsPort: undefined,
    natsUrl: cluster.url,
    streamReplicas: 3,
    replicas: Object.fromEntries(ALL_SERVICES.map((name) => [name, REPLICAS])),
    ingressPort: ingressPorts[0]!,
    ledgerPort: ledgerPorts[0]!,
    replicaEnv: (name, i) => ({
      ...(name === 'ingress' ? { SLUICE_INGRESS_PORT: String(ingressPorts[i]) } : {}),
      ...(name === 'ledger' ? { SLUICE_LEDGER_PORT: String(ledgerPorts[i]) } : {}),
    }),
    sim: { port: 0, latencyMs: 30 },
    // built, as in production: a restart under tsx costs ~2 s of CPU, and one every few seconds on
    // two cores starved the rest (`npm run chaos:cluster` builds first)
    entries: 'compiled',
    // no fixed /metrics ports (compiled entries default to npm start's), and metrics off as in every e2e stack
    metricsPorts: {},
    env: { LOG_LEVEL: 'info', SLUICE_METRICS: 'off' },
    // SLUICE_CHAOS_LOG=<file>: every service's log lines there, to follow a failed call by its request id
    ...(chaosLog ? { onLine: (service: string, line: string) => chaosLog.write(`[${service}] ${line}\n`) } : {}),
  });
  // a connection of its own that never gives up reconnecting, to any node, like the services'
  nc = await connect({ servers: cluster.url.split(','), maxReconnectAttempts: -1, reconnectTimeWait: 250 });
}, 300_000);

afterAll(async () => {
  await nc?.close();
  await stack?.close();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  chaosLog?.end();
});

/** One request as a client that retries sees it: every try, the last outcome, when it ended. */
interface Call {
  door: 'nats' | 'http';
  /** The one key every try sent (HTTP `Idempotency-Key`, NATS `sluice-idempotency-key`). */
  idempotencyKey: string;
  final: Outcome;
  attempts: number;
  /** Request ids the tries were given (one when the idempotency key held them together). */
  requestIds: string[];
  /** What each try before the last got: a code, or the transport error's first words. */
  retriedAfter: string[];
  /** Each try as `<ms into the call> <outcome> <request id>`, to follow a call in the logs. */
  tries: string[];
  startedAt: number;
  endedAt: number;
}

/** Tries `attempt` with one Idempotency-Key until it is answered or refused for good (a status no retry fixes). */
async function withRetries(door: Call['door'], attempt: (key: string, n: number) => Promise<Outcome>): Promise<Call> {
  const key = randomUUID();
  const startedAt = Date.now();
  const requestIds = new Set<string>();
  const retriedAfter: string[] = [];
  const tries: string[] = [];
  let final: Outcome = { kind: 'transport', refused: true, message: 'never tried' };
  let n = 0;
  while (n < MAX_ATTEMPTS) {
    const triedAt = Date.now() - startedAt;
    final = await attempt(key, n++);
    const what = final.kind === 'answered' ? 'answered' : final.kind === 'coded' ? `${final.code} ${final.status}` : final.message.slice(0, 60);
    tries.push(`${triedAt} ${what} ${final.kind === 'transport' ? '' : (final.requestId ?? '')}`.trim());
    if (final.kind !== 'transport' && final.requestId) requestIds.add(final.requestId);
    if (final.kind === 'answered' || (final.kind === 'coded' && !isRetryableStatus(final.status))) break;
    retriedAfter.push(final.kind === 'coded' ? final.code : final.message.slice(0, 60));
    await sleep(Math.min(final.kind === 'coded' ? (final.retryAfterMs ?? 500 * n) : 500 * n, 5000));
  }
  return { door, idempotencyKey: key, final, attempts: n, requestIds: [...requestIds], retriedAfter, tries, startedAt, endedAt: Date.now() };
}

/** The longest time without any answer between `from` and `to`, and the slowest call started then. */
function pauseAround(calls: readonly Call[], from: number, to: number) {
  const answers = calls
    .filter((c) => c.final.kind === 'answered')
    .map((c) => c.endedAt)
    .sort((a, b) => a - b);
  // a gap that starts inside the window ends at the next answer, even past `to`
  let gapMs = 0;
  let prev = answers.filter((t) => t < from).at(-1) ?? from;
  let closed = false;
  for (const t of answers.filter((t) => t >= from)) {
    gapMs = Math.max(gapMs, t - prev);
    if (t > to) {
      closed = true;
      break;
    }
    prev = t;
  }
  // no answer came after the window's last one: the pause lasted at least to the window's end
  if (!closed) gapMs = Math.max(gapMs, to - prev);
  const slowestMs = Math.max(0, ...calls.filter((c) => c.startedAt >= from && c.startedAt <= to).map((c) => c.endedAt - c.startedAt));
  return { gapMs, slowestMs };
}

/** The stages of an answered request, in order: each event's `at` is when its stage decided. */
const STAGES: readonly EventType[] = ['chat.requested', 'chat.admitted', 'cache.missed', 'chat.routed', 'chat.completed'];

/**
 * Where the time went around a node kill: for the requests accepted in [from, to] that completed,
 * the longest wait before each stage's event since the one before it (`chat.requested` is when
 * ingress accepted it; the wait before `chat.admitted` is ingress's publish and the limiter's pull).
 */
function slowestStages(at: ReadonlyMap<EventType, ReadonlyMap<string, number>>, from: number, to: number): Record<string, number> {
  const accepted = [...at.get('chat.requested')!].filter(([, t]) => t >= from && t <= to).map(([id]) => id);
  const slowest: Record<string, number> = {};
  for (let i = 1; i < STAGES.length; i++) {
    const waits = accepted.map((id) => (at.get(STAGES[i]!)!.get(id) ?? NaN) - (at.get(STAGES[i - 1]!)!.get(id) ?? NaN)).filter(Number.isFinite);
    slowest[STAGES[i]!] = Math.max(0, ...waits);
  }
  return slowest;
}

async function streamLeader(): Promise<string> {
  const jsm = await jetstreamManager(nc);
  return eventually(async () => (await jsm.streams.info(Topology.stream.name)).cluster?.leader ?? false, 30_000, { what: 'a stream leader' });
}

/** Waits until every replica of the event stream is current again (a restarted node caught up). */
async function streamCurrent(): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await eventually(
    async () => {
      const info = await jsm.streams.info(Topology.stream.name);
      return (info.cluster?.replicas ?? []).length === 2 && info.cluster!.replicas!.every((r) => r.current && !r.offline);
    },
    60_000,
    { what: 'the event stream to be current on every node' },
  );
}

describe('a three-node NATS cluster under load', () => {
  it('loses nothing, charges nothing twice and bills exactly what was served through node and replica kills', async () => {
    const started = Date.now();
    const natsDoor = new SluiceClient(nc, { tenant: 'dev', key: DEV_KEY, timeoutMs: CLIENT_TIMEOUT_MS });
    const httpDoors = ingressUrls.map((baseURL) => new OpenAI({ baseURL, apiKey: DEV_KEY, maxRetries: 0, timeout: CLIENT_TIMEOUT_MS }));
    const natsLoad = loadLoop((n) => {
      const messages = prompt('nats', n);
      return withRetries('nats', (key) => natsCall(natsDoor, messages, key));
    }, PACE_MS);
    const httpLoad = loadLoop((n) => {
      const messages = prompt('http', n);
      // round robin over the ingress replicas; a retry goes to the next one
      return withRetries('http', (key, attempt) => httpCall(httpDoors[(n + attempt) % httpDoors.length]!, messages, key));
    }, PACE_MS);

    // service processes SIGKILLed at random, one every few seconds, never the last ready one of a service
    const serviceKills: string[] = [];
    let killing = KILL_SERVICES;
    const killer = (async () => {
      while (killing) {
        await sleep(SERVICE_KILL_EVERY_MS);
        if (!killing) break;
        const candidates = [...stack.replicas].flatMap(([name, all]) =>
          all.filter((s) => s.ready && all.filter((o) => o.ready).length > 1).map((s, i) => ({ name, s, i })),
        );
        const pick = candidates[Math.floor(Math.random() * candidates.length)];
        if (!pick) continue;
        pick.s.kill('SIGKILL');
        serviceKills.push(`${pick.name}#${stack.replicas.get(pick.name)!.indexOf(pick.s)} ${new Date().toISOString()}`);
      }
    })();

    const nodeKills: Array<{ node: string; role: string; at: number; back: number }> = [];
    const killNode = async (node: string, role: string) => {
      const at = Date.now();
      if (!KILL_NODES) return void (await sleep(NODE_DOWN_MS));
      await cluster.kill(node);
      await sleep(NODE_DOWN_MS);
      await cluster.restart(node);
      await streamCurrent();
      nodeKills.push({ node, role, at, back: Date.now() });
    };

    await sleep(5000);
    const leader = await streamLeader();
    await killNode(leader, 'stream leader');
    await sleep(5000);
    const follower = cluster.nodes.map((n) => n.name).find((n) => n !== leader)!;
    await killNode(follower, 'another node');
    await sleep(5000);
    await killNode(await streamLeader(), 'stream leader again');
    await sleep(5000);

    killing = false;
    await killer;
    await Promise.all([natsLoad.stop(), httpLoad.stop()]);
    await Promise.all([...stack.replicas.values()].flat().map((s) => s.whenReady(90_000)));
    const loadEnded = Date.now();
    await stack.ledgerCaughtUp(120_000);
    await stack.consumersDrained(60_000);

    const calls = [...natsLoad.outcomes, ...httpLoad.outcomes];
    const { requested, lost, doubled, completedIds } = await auditRequests(nc);
    const unanswered = calls.filter((c) => c.final.kind !== 'answered');
    // one request charged under two ids: tries of one call that each completed
    const doubledByClient = calls.filter((c) => c.requestIds.filter((id) => completedIds.has(id)).length > 1);
    const bill = await billing(stack);
    const pauses = nodeKills.map((k) => ({ ...k, downMs: k.back - k.at, ...pauseAround(calls, k.at, k.at + NODE_DOWN_MS + 10_000) }));
    const stageAt = new Map<EventType, Map<string, number>>();
    for (const type of STAGES) stageAt.set(type, new Map((await eventsOf(nc, type)).map((e) => [e.requestId, Date.parse(e.at)])));
    const figures = {
      kills: KILLS,
      wallMs: Date.now() - started,
      loadMs: loadEnded - started,
      serviceReplicas: REPLICAS,
      streamReplicas: 3,
      requests: calls.length,
      retried: calls.filter((c) => c.attempts > 1).length,
      // calls that needed another try, by the 5 s slice of the run they started in (against the kills' times below)
      retriedBy5s: calls.reduce<number[]>((acc, c) => {
        if (c.attempts > 1) acc[Math.floor((c.startedAt - started) / 5000)] = (acc[Math.floor((c.startedAt - started) / 5000)] ?? 0) + 1;
        return acc;
      }, []),
      retriedAfter: calls.flatMap((c) => c.retriedAfter).reduce<Record<string, number>>((acc, r) => ({ ...acc, [r]: (acc[r] ?? 0) + 1 }), {}),
      nats: tally(natsLoad.outcomes.map((c) => c.final)),
      http: tally(httpLoad.outcomes.map((c) => c.final)),
      unanswered: unanswered.length,
      requested,
      completed: completedIds.size,
      lost: lost.length,
      // requests beyond one per call: a retry the Idempotency-Key did not tie to its first try
      doubled: doubled.length + doubledByClient.length + Math.max(0, requested - calls.length),
      nodeKills: pauses.map((p) => ({
        node: p.node,
        role: p.role,
        atS: Math.round((p.at - started) / 1000),
        downMs: p.downMs,
        longestGapMs: p.gapMs,
        slowestCallMs: p.slowestMs,
        // the longest wait before each stage, for requests accepted from the kill to 5 s after
        slowestStageMs: slowestStages(stageAt, p.at, p.at + 5000),
      })),
      longestPauseMs: Math.max(0, ...pauses.map((p) => p.gapMs)),
      slowestCallMs: Math.max(0, ...calls.map((c) => c.endedAt - c.startedAt)),
      serviceKills,
      ...bill,
    };
    console.log(JSON.stringify(figures, null, 1));
    // the calls the assertions below name, each try's outcome and request ids, to look up in the logs
    // and, for a call left unanswered, which request its key names now (the first try's, or a takeover's)
    const jsm = await jetstreamManager(nc);
    const ib = Topology.buckets.idempotency.name;
    const heldBy = async (c: Call) =>
      (await jsm.streams.getMessage(`KV_${ib}`, { last_by_subj: `$KV.${ib}.${idempotencyBucketKey('dev', c.idempotencyKey)}` }).catch(() => null))?.string();
    const told = async (c: Call) => ({ ...c, startedS: (c.startedAt - started) / 1000, tookMs: c.endedAt - c.startedAt, keyHeldBy: await heldBy(c) });
    console.log(
      JSON.stringify(
        {
          unansweredCalls: await Promise.all(unanswered.map(told)),
          doubledCalls: await Promise.all(doubledByClient.map(told)),
          doubledTerminals: doubled.slice(0, 20),
        },
        null,
        1,
      ),
    );

    // every call ended with an answer (the tries a retry fixed included)
    expect(unanswered.map((c) => c.final)).toEqual([]);
    // each accepted request ended exactly once, and no call was charged under two ids
    expect(lost).toEqual([]);
    expect(doubled).toEqual([]);
    expect(doubledByClient).toEqual([]);
    expect(requested).toBe(calls.length);
    // every answer a client got is a completion in the stream
    for (const c of calls) if (c.final.kind === 'answered') expect(completedIds.has(c.final.requestId)).toBe(true);
    expectBilledExactlyOnce(bill, completedIds);
  }, 900_000);

  it("three limiters admit at most 1 % over a tenant's requests per minute", async () => {
    const bursts: Array<{ tenant: (typeof TIGHT)[number]; outcomes: Outcome[]; burstMs: number }> = [];
    for (const tenant of TIGHT) {
      // the tenant's whole minute asked for three times over, at once through both doors
      const tightNats = await connect({ servers: cluster.url.split(','), maxReconnectAttempts: -1 });
      const tightDoor = new SluiceClient(tightNats, { tenant: tenant.id, key: tenant.key, timeoutMs: CLIENT_TIMEOUT_MS });
      const tightHttp = ingressUrls.map((baseURL) => new OpenAI({ baseURL, apiKey: tenant.key, maxRetries: 0, timeout: CLIENT_TIMEOUT_MS }));
      const startedAt = Date.now();
      const outcomes = await Promise.all(
        Array.from({ length: TIGHT_CALLS }, (_, n) =>
          n % 2 === 0 ? natsCall(tightDoor, prompt(tenant.id, n)) : httpCall(tightHttp[n % tightHttp.length]!, prompt(tenant.id, n)),
        ),
      );
      bursts.push({ tenant, outcomes, burstMs: Date.now() - startedAt });
      await tightNats.close();
    }
    // what the three limiters decided, from the stream: an admitted request may still fail later
    // (run J: 11 ended upstream_failed when the simulator deployment's circuit opened), so the
    // answered calls are not the admissions
    await stack.consumersDrained(60_000);
    const figures = [];
    for (const { tenant, outcomes, burstMs } of bursts) {
      const admittedEvents = await streamEvents(nc, Subjects.event('chat.admitted', tenant.id));
      const upstreamErrors = (await streamEvents(nc, Subjects.event('invoke.failed', tenant.id))).reduce<Record<string, number>>((acc, e) => {
        const what = `${(e.data as { status?: number }).status ?? ''} ${String((e.data as { error?: string }).error).slice(0, 60)}`.trim();
        return { ...acc, [what]: (acc[what] ?? 0) + 1 };
      }, {});
      // a full bucket plus what refilled while the burst lasted
      const allowed = tenant.requestsPerMinute * (1 + burstMs / 60_000);
      figures.push({
        tenant: tenant.id,
        limitPerMinute: tenant.requestsPerMinute,
        limiterReplicas: REPLICAS,
        calls: TIGHT_CALLS,
        burstMs,
        allowed: Number(allowed.toFixed(2)),
        most: Math.floor(allowed * 1.01) + 1,
        admitted: admittedEvents.length,
        admittedRequests: new Set(admittedEvents.map((e) => e.requestId)).size,
        overAdmissionPct: Number(((admittedEvents.length / allowed - 1) * 100).toFixed(2)),
        answered: outcomes.filter((o) => o.kind === 'answered').length,
        outcomes: tally(outcomes),
        // every call was admitted and answered, refused 429 by a limiter, or refused before it
        // reached them in a way a client retries (run Q3: three 408s, node's headers timer on a
        // two-core machine running 24 processes; a 503 shed by ingress's bounds)
        allAnsweredOrThrottled: outcomes.every((o) => o.kind === 'answered' || (o.kind === 'coded' && NOT_ADMITTED.has(o.code))),
        upstreamErrors,
      });
    }
    // each replica of the limits bucket as its leader in turn: how it numbers the tenants' buckets
    // (nats-server 2.9.10's replicas number a stream differently after a leader kill) and their levels
    const limitsBucket = Topology.buckets.limits.name;
    const replicaViews = await leaderViews(nc, `KV_${limitsBucket}`, [...TIGHT.map((t) => `$KV.${limitsBucket}.t.${t.id}`), `$KV.${limitsBucket}.t.dev`], (m) =>
      String(Math.floor(m.json<{ requests: number }>().requests * 100) / 100),
    );
    console.log(JSON.stringify({ limiter: { bursts: figures, replicaViews } }, null, 1));
    for (const f of figures) {
      expect(f.allAnsweredOrThrottled, f.tenant).toBe(true);
      // at most 1 % over (and the last whole request)
      expect(f.admitted, f.tenant).toBeLessThanOrEqual(f.most);
    }
  });
});
