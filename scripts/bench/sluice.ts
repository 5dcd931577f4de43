import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { SluiceClient } from '@sluice/client';
import { freePort } from '@sluice/bus/nats-server';
import type { ServiceName } from '@sluice/contracts';
import { ROOT, startStack, type Stack } from '../stack.js';
import { drive, post, sleep, type Call, type Run } from './load.js';
import { benchCpuMs, sum, usage, type Roots, type Usage } from './procs.js';
import { messagesOf, type Workload } from './workload.js';

const KEY = 'sk-bench';
const MODEL = 'gpt-4o-mini';

export interface BenchStackOptions {
  services?: readonly ServiceName[];
  replicas?: Partial<Record<ServiceName, number>>;
  /** Extra environment for every service (tracing, log level). */
  env?: NodeJS.ProcessEnv;
}

/** What one run of one path at one concurrency cost the gateway. */
export interface Measured {
  run: Run;
  /** Requests sent, answered or not. */
  requests: number;
  /** CPU ms per request over every service process and nats-server, read after the ledger caught up. */
  cpuMsPerRequest: number;
  /** Resident MiB of those processes when the run ended. */
  rssMiB: number;
  /** Bytes appended to SLUICE_EVENTS per request. */
  bytesPerRequest: number;
  /** How far the ledger trailed and how long it took to catch up. */
  ledger: string;
  /** Each process's CPU ms before and after, and the bench's own (with the simulator in it), for the per-process breakdown. */
  before: Map<string, Usage>;
  after: Map<string, Usage>;
  benchMs: number;
}

/** The whole stack as the bench drives it: the simulator at zero latency, every service, a private nats-server, PGlite, cache on. */
export interface BenchStack {
  stack: Stack;
  nc: NatsConnection;
  /** The simulator itself over HTTP (the floor). */
  direct(w: Workload): Call;
  /** The gateway's OpenAI endpoint. */
  http(w: Workload): Call;
  /** The gateway's NATS front door. */
  nats(w: Workload): Call;
  /** Every service process (a replica past the first as `<name>#<n>`) and nats-server. */
  pids(): Roots;
  /**
   * Drives `call` at `concurrency` for `seconds` and reads what it cost the gateway, once the
   * ledger has caught up and `settleMs` more have passed (work the run left behind, such as spans
   * waiting for their batch to be exported, then counts).
   */
  measure(seconds: number, concurrency: number, call: Call, settleMs?: number): Promise<Measured>;
  close(): Promise<void>;
}

/**
 * The shipped config, as `npm start` runs it; `BENCH_SEMANTIC=0` turns the dev tenant's semantic
 * cache off, to measure what it costs a path where every request misses (the bench's bodies are
 * unique, and differ by a number the guard refuses to match across).
 */
function benchConfig(): unknown {
  const config = JSON.parse(readFileSync(join(ROOT, 'config', 'sluice.json'), 'utf8')) as { tenants: Array<{ cache?: unknown }> };
  if (process.env.BENCH_SEMANTIC === '0') for (const t of config.tenants) delete t.cache;
  return config;
}

/** Starts a stack for the bench on free ports, in a fresh data directory removed by `close`. */
export async function startBenchStack(opts: BenchStackOptions = {}): Promise<BenchStack> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
  const stack = await startStack({
    dataDir,
    privateNatsPort: await freePort(),
    ingressPort: await freePort(),
    ledgerPort: await freePort(),
    devKey: KEY,
    config: benchConfig(),
    sim: { port: 0, latencyMs: 0 },
    env: { LOG_LEVEL: 'warn', ...opts.env },
    ...(opts.services ? { services: opts.services } : {}),
    ...(opts.replicas ? { replicas: opts.replicas } : {}),
    // the ledger on Postgres instead of PGlite (an empty database: it migrates it)
    ...(process.env.BENCH_DATABASE_URL ? { databaseUrl: process.env.BENCH_DATABASE_URL } : {}),
  });
  const nc = await connect({ servers: stack.natsUrl });
  const jsm = await jetstreamManager(nc);
  const client = new SluiceClient(nc, { tenant: 'dev', key: KEY, timeoutMs: 30_000 });
  const simUrl = new URL(`${stack.sim!.url}/chat/completions`);
  const gatewayUrl = new URL(`${stack.ingressUrl}/v1/chat/completions`);
  const pids = (): Roots => [
    ...[...stack.replicas].flatMap(([name, all]) => all.map((s, n): [string, number | undefined] => [n === 0 ? name : `${name}#${n + 1}`, s.pid])),
    ['nats-server', stack.nats?.process.pid],
  ];
  const bodyOf = (w: Workload) => {
    const messages = messagesOf(w);
    return (i: number) => JSON.stringify({ model: MODEL, messages: messages(i) });
  };
  return {
    stack,
    nc,
    direct: (w) => {
      const body = bodyOf(w);
      return async (i) => ((await post(simUrl, body(i), {})).status === 200 ? 'ok' : 'failed');
    },
    http: (w) => {
      const body = bodyOf(w);
      return async (i) => {
        const { status, cache } = await post(gatewayUrl, body(i), { authorization: `Bearer ${KEY}` });
        return status !== 200 ? 'failed' : cache === 'hit' ? 'cached' : 'ok';
      };
    },
    nats: (w) => {
      const messages = messagesOf(w);
      return async (i) => {
        const r = await client.chat({ model: MODEL, messages: messages(i) });
        return r.usage.completion_tokens === 0 ? 'failed' : r.cached ? 'cached' : 'ok';
      };
    },
    pids,
    async measure(seconds, concurrency, call, settleMs = 0) {
      const roots = pids();
      const [before, bench0, bytes0] = [usage(roots), benchCpuMs(), await streamBytes(jsm)];
      const run = await drive(seconds, concurrency, call);
      const requests = Math.max(1, run.latencies.length + run.errors);
      const ledger = stack.services.has('ledger') ? await ledgerLag(stack.ledgerUrl, stack.adminKey) : 'no ledger';
      await sleep(settleMs);
      const after = usage(roots);
      return {
        run,
        requests,
        cpuMsPerRequest: (sum(after, 'cpuMs') - sum(before, 'cpuMs')) / requests,
        rssMiB: sum(after, 'rssMiB'),
        bytesPerRequest: ((await streamBytes(jsm)) - bytes0) / requests,
        ledger,
        before,
        after,
        benchMs: benchCpuMs() - bench0,
      };
    },
    async close() {
      await nc.close();
      await stack.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Several runs of one configuration as one: requests, time and CPU added up, latencies merged. */
export function pooled(all: Measured[]): Measured {
  const total = (f: (m: Measured) => number) => all.reduce((s, m) => s + f(m), 0);
  const requests = total((m) => m.requests);
  return {
    run: {
      latencies: all.flatMap((m) => m.run.latencies).sort((a, b) => a - b),
      errors: total((m) => m.run.errors),
      cached: total((m) => m.run.cached),
      elapsedMs: total((m) => m.run.elapsedMs),
    },
    requests,
    cpuMsPerRequest: total((m) => m.cpuMsPerRequest * m.requests) / requests,
    rssMiB: all.at(-1)!.rssMiB,
    bytesPerRequest: total((m) => m.bytesPerRequest * m.requests) / requests,
    ledger: all.map((m) => m.ledger).join('; '),
    before: all[0]!.before,
    after: all[0]!.after,
    benchMs: total((m) => m.benchMs),
  };
}

const streamBytes = async (jsm: JetStreamManager) => (await jsm.streams.info('SLUICE_EVENTS')).state.bytes;

/**
 * How far the ledger trails the stream when a run ends, and how long it takes to catch up. The
 * ledger is off the request path, so a run can outpace it; a throughput it cannot sustain shows
 * here as a backlog that keeps growing with the run's length. Waiting for it also keeps the next
 * run from paying for this one's backlog.
 */
async function ledgerLag(ledgerUrl: string, adminKey: string): Promise<string> {
  // the ledger's own position endpoint also reports the stream's last sequence
  const position = async () =>
    (await (await fetch(`${ledgerUrl}/v1/ledger/position`, { headers: { authorization: `Bearer ${adminKey}` } })).json()) as {
      seq: number;
      streamLastSeq: number;
    };
  const end = await position();
  const last = end.streamLastSeq;
  const behind = last - end.seq;
  const t0 = performance.now();
  while ((await position()).seq < last && performance.now() - t0 < 60_000) await sleep(20);
  return `ledger ${behind} events behind at the end, caught up in ${Math.round(performance.now() - t0)} ms`;
}
