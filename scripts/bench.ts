/**
 * `npm run bench`: the gateway's added latency and throughput on this machine.
 *
 * Starts the whole stack (every service its own process, a private nats-server, PGlite, the
 * simulator with zero latency) and, in one run and at each concurrency level, drives:
 *   direct — the simulator itself over HTTP (the floor),
 *   http   — the gateway's OpenAI endpoint (cache bypassed, so every request takes the full path),
 *   nats   — the gateway's NATS front door (cache bypassed),
 * then prints p50/p95/p99 latency, throughput and errors for each, and the gateway-added latency
 * (gateway percentile minus direct percentile) with the ratio to direct.
 * BENCH_SECONDS (default 5) per run, BENCH_LEVELS (default 1,8,32,128); BENCH_PATHS (default
 * direct,http,nats) picks paths, BENCH_SERVICES (default all) the services started (e.g. without
 * the ledger, to see its share of the machine). BENCH_DETAIL=1 adds, per gateway run, the median
 * time between consecutive events of a request (as the bench sees them arrive on the bus) and the
 * CPU each process spent per request. After each gateway run the bench waits for the ledger to
 * catch up (its lag is printed, and keeps the next run from paying for this one's backlog); the
 * end prints each process's resident memory, and for each gateway run the bytes it appended to
 * SLUICE_EVENTS per request. BENCH_PROMPT_BYTES pads every prompt to about that many bytes.
 */
import { Agent, request } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { ServiceName } from '@sluice/contracts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { SluiceClient } from '@sluice/client';
import { freePort } from '@sluice/bus/nats-server';
import { ROOT, startStack } from './stack.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const levels = (process.env.BENCH_LEVELS ?? '1,8,32,128').split(',').map(Number);
const KEY = 'sk-bench';
const only = (list: string | undefined) => (list ? new Set(list.split(',')) : undefined);
const pathFilter = only(process.env.BENCH_PATHS);
const serviceList = process.env.BENCH_SERVICES?.split(',') as ServiceName[] | undefined;
const detail = process.env.BENCH_DETAIL === '1';

interface Run {
  latencies: number[];
  errors: number;
  elapsedMs: number;
}

const agent = new Agent({ keepAlive: true, maxSockets: 1024 });

function post(url: URL, body: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Runs `call` from `concurrency` loops for `seconds`; each loop issues one request at a time. */
async function drive(concurrency: number, call: (i: number) => Promise<boolean>): Promise<Run> {
  const latencies: number[] = [];
  let errors = 0;
  let n = 0;
  const start = performance.now();
  const until = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const t0 = performance.now();
        const ok = await call(n++).catch(() => false);
        if (ok) latencies.push(performance.now() - t0);
        else errors++;
      }
    }),
  );
  return { latencies: latencies.sort((a, b) => a - b), errors, elapsedMs: performance.now() - start };
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const fmt = (ms: number) => (Number.isFinite(ms) ? ms.toFixed(2).padStart(7) : '    n/a');

const dataDir = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
const config: unknown = JSON.parse(readFileSync(join(ROOT, 'config', 'sluice.json'), 'utf8'));
const stack = await startStack({
  dataDir,
  privateNatsPort: await freePort(),
  ingressPort: await freePort(),
  ledgerPort: await freePort(),
  devKey: KEY,
  config,
  sim: { port: 0, latencyMs: 0 },
  env: { LOG_LEVEL: 'warn' },
  ...(serviceList ? { services: serviceList } : {}),
});
const nc = await connect({ servers: stack.natsUrl });
const client = new SluiceClient(nc, { tenant: 'dev', key: KEY, timeoutMs: 30_000 });
// BENCH_PROMPT_BYTES pads each prompt (a long conversation), to see what the body costs each hop
const padding = ' context'.repeat(Math.ceil(Number(process.env.BENCH_PROMPT_BYTES ?? 0) / 8));
const message = (i: number) => [{ role: 'user' as const, content: `Benchmark request ${i}: summarise the benefits of backpressure in one line.${padding}` }];
const direct = new URL(`${stack.sim!.url}/chat/completions`);
const gateway = new URL(`${stack.ingressUrl}/v1/chat/completions`);
const body = (i: number) => JSON.stringify({ model: 'gpt-4o-mini', messages: message(i) });

const allPaths: Record<string, (i: number) => Promise<boolean>> = {
  direct: async (i) => (await post(direct, body(i), {})) === 200,
  http: async (i) => (await post(gateway, body(i), { authorization: `Bearer ${KEY}`, 'x-sluice-cache': 'skip' })) === 200,
  nats: async (i) => {
    const r = await client.chat({ model: 'gpt-4o-mini', messages: message(i) }, { skipCache: true });
    return r.usage.completion_tokens > 0;
  },
};

const paths = Object.fromEntries(Object.entries(allPaths).filter(([name]) => name === 'direct' || !pathFilter || pathFilter.has(name)));

// warm up JIT, connections and consumers
for (const call of Object.values(paths)) await drive(8, call).catch(() => undefined);

// --- BENCH_DETAIL: where a request's time and the machine's CPU go ---
/** Arrival times (ms, this process's clock) of each request's events on the bus. */
const hops = new Map<string, Array<[string, number]>>();
const details: string[] = [];
if (detail) {
  nc.subscribe('sluice.evt.>', {
    callback: (_err, msg) => {
      const t = performance.now();
      const e = JSON.parse(new TextDecoder().decode(msg.data)) as { type: string; requestId: string };
      const list = hops.get(e.requestId) ?? [];
      list.push([e.type, t]);
      hops.set(e.requestId, list);
    },
  });
}
const TICK_MS = 1000 / 100; // USER_HZ
/** CPU ms so far of every service, nats-server and this process (client + simulator). */
/** Every service's and nats-server's pid, by name (a service between restarts has none). */
function stackPids(): Array<[string, number | undefined]> {
  return [...[...stack.services].map(([n, s]): [string, number | undefined] => [n, s.pid]), ['nats-server', stack.nats?.process.pid]];
}

function cpuSnapshot(): Map<string, number> {
  const snap = new Map<string, number>();
  for (const [name, pid] of stackPids()) {
    if (!pid) continue;
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      snap.set(name, (Number(f[11]) + Number(f[12])) * TICK_MS);
    } catch {
      // gone
    }
  }
  const u = process.cpuUsage();
  snap.set('bench+sim', (u.user + u.system) / 1000);
  return snap;
}
/** Resident memory (MB) of every service and nats-server: now, and the peak since start (VmHWM). */
function memoryLine(): string {
  const parts: string[] = [];
  for (const [name, pid] of stackPids()) {
    if (!pid) continue;
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const kb = (field: string) => Number(/\s(\d+) kB/.exec(status.split('\n').find((l) => l.startsWith(field)) ?? '')?.[1] ?? NaN);
      parts.push(`${name} ${(kb('VmRSS:') / 1024).toFixed(0)}/${(kb('VmHWM:') / 1024).toFixed(0)}`);
    } catch {
      // gone
    }
  }
  return `memory MB (resident now/peak): ${parts.join(', ')}\n`;
}

function describeRun(name: string, c: number, requests: number, before: Map<string, number>): string {
  const after = cpuSnapshot();
  const cpu = [...after].map(([n, ms]) => `${n} ${((ms - (before.get(n) ?? 0)) / Math.max(1, requests)).toFixed(2)}`).join(', ');
  const total = [...after].reduce((sum, [n, ms]) => sum + ms - (before.get(n) ?? 0), 0) / Math.max(1, requests);
  // median gap between consecutive events of a request, by pair of types
  const gaps = new Map<string, number[]>();
  for (const list of hops.values()) {
    for (let i = 1; i < list.length; i++) {
      const pair = `${list[i - 1]![0]}→${list[i]![0]}`;
      gaps.set(pair, [...(gaps.get(pair) ?? []), list[i]![1] - list[i - 1]![1]]);
    }
  }
  const common = [...gaps]
    .filter(([, v]) => v.length >= requests / 2)
    .map(
      ([pair, v]) =>
        `${pair} ${pct(
          v.sort((a, b) => a - b),
          50,
        ).toFixed(2)}`,
    );
  return `${name} c=${c}: CPU ms/request ${total.toFixed(2)} (${cpu})\n  event gaps p50 ms: ${common.join(', ')}\n`;
}

if (detail) {
  // what the stack burns with no traffic at all (after the warm-up's backlog drained)
  await new Promise((r) => setTimeout(r, 2000));
  const before = cpuSnapshot();
  await new Promise((r) => setTimeout(r, 3000));
  const idle = [...cpuSnapshot()].map(([n, ms]) => `${n} ${(((ms - (before.get(n) ?? 0)) / 3000) * 100).toFixed(1)}%`);
  details.push(`idle CPU: ${idle.join(', ')}\n`);
}

/**
 * How far the ledger trails the stream when a run ends, and how long it takes to catch up. The
 * ledger is off the request path, so a run can outpace it; a throughput it cannot sustain shows
 * here as a backlog that keeps growing with the run's length.
 */
async function ledgerLag(): Promise<string> {
  // the ledger's own position endpoint also reports the stream's last sequence
  const position = async () => (await (await fetch(`${stack.ledgerUrl}/v1/ledger/position`)).json()) as { seq: number; streamLastSeq: number };
  const end = await position();
  const last = end.streamLastSeq;
  const behind = last - end.seq;
  const t0 = performance.now();
  while ((await position()).seq < last && performance.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 20));
  return `ledger ${behind} events behind at the end, caught up in ${Math.round(performance.now() - t0)} ms`;
}

const cpus = (await import('node:os')).cpus().length;
process.stdout.write(`\nSluice benchmark — ${cpus} cores, node ${process.version}, ${seconds}s per run, simulator latency 0 ms\n`);
process.stdout.write('path    conc   req/s   p50 ms  p95 ms  p99 ms  errors | added p50  p95     p99     (gateway/direct p50)\n');
const rows: Array<Record<string, unknown>> = [];
const lags: string[] = [];
/** Issue 9's measure: the body is written once, later events carry facts (target: body + 4 KB). */
const appended: string[] = [];
const jsm = await jetstreamManager(nc);
const streamBytes = async () => (await jsm.streams.info('SLUICE_EVENTS')).state.bytes;
for (const c of levels) {
  const results: Record<string, Run> = {};
  for (const [name, call] of Object.entries(paths)) {
    const cpu = detail && name !== 'direct' ? cpuSnapshot() : undefined;
    hops.clear();
    const before = name === 'direct' ? 0 : await streamBytes();
    results[name] = await drive(c, call);
    if (cpu) details.push(describeRun(name, c, results[name].latencies.length, cpu));
    if (name !== 'direct') {
      lags.push(`${name} c=${c}: ${await ledgerLag()}\n`);
      const requests = results[name].latencies.length + results[name].errors;
      appended.push(
        `${name} c=${c}: ${(Math.round((await streamBytes()) - before) / Math.max(1, requests)) | 0} B appended to SLUICE_EVENTS per request (body ${Buffer.byteLength(body(0))} B)\n`,
      );
    }
  }
  const d = results.direct!;
  for (const [name, r] of Object.entries(results)) {
    const rps = (r.latencies.length / r.elapsedMs) * 1000;
    const [p50, p95, p99] = [50, 95, 99].map((p) => pct(r.latencies, p)) as [number, number, number];
    const added =
      name === 'direct'
        ? ''
        : ` | ${fmt(p50 - pct(d.latencies, 50))} ${fmt(p95 - pct(d.latencies, 95))} ${fmt(p99 - pct(d.latencies, 99))} (${(p50 / pct(d.latencies, 50)).toFixed(1)}x)`;
    process.stdout.write(
      `${name.padEnd(7)} ${String(c).padStart(4)} ${rps.toFixed(0).padStart(7)} ${fmt(p50)} ${fmt(p95)} ${fmt(p99)} ${String(r.errors).padStart(7)}${added}\n`,
    );
    rows.push({ path: name, concurrency: c, rps: Math.round(rps), p50, p95, p99, errors: r.errors });
  }
}
for (const l of lags) process.stdout.write(l);
for (const a of appended) process.stdout.write(a);
for (const d of details) process.stdout.write(d);
process.stdout.write(memoryLine());
if (process.env.BENCH_JSON) process.stdout.write(`${JSON.stringify(rows)}\n`);
await nc.close();
await stack.stop();
agent.destroy();
rmSync(dataDir, { recursive: true, force: true });
