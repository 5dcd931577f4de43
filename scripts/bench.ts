/**
 * `npm run bench`: the gateway's added latency, throughput and cost on this machine, beside Portkey.
 *
 * Starts the whole stack (every service its own process, a private nats-server, PGlite, the
 * simulator with zero latency) and Portkey's open-source gateway (`@portkey-ai/gateway`, pinned
 * dev dependency, its Node server as a child process on a free port, sent to the same simulator
 * with `x-portkey-provider: openai` and `x-portkey-custom-host`), and in one run, at each
 * concurrency level, drives:
 *   direct  — the simulator itself over HTTP (the floor),
 *   portkey — Portkey's `/v1/chat/completions` (the peer),
 *   http    — the gateway's OpenAI endpoint,
 *   nats    — the gateway's NATS front door.
 * Every request body is unique across the whole run, and the gateway runs with its cache on, as
 * `npm start` runs it: every request misses, but the cache's lookup and store are on the path, as
 * in production (Portkey's cache is off unless a config asks for it).
 * For each path and level it prints requests/s, p50/p95/p99, errors, the added latency (the
 * path's percentile minus direct's), and for the peers: CPU ms per request summed over every
 * process of the target (Sluice: each service and nats-server; Portkey: its process and any
 * children), their resident memory at the end of the run, the bytes appended to SLUICE_EVENTS per
 * request (Sluice only), and requests/s and CPU per request as ratios to Portkey's at that level.
 * A Sluice run's CPU is read after the ledger has caught up, so the projection it caused counts.
 * BENCH_SECONDS (default 5) per run, BENCH_LEVELS (default 1,8,32,128); BENCH_PATHS (default
 * direct,portkey,http,nats) picks paths, BENCH_SERVICES (default all) the services started (e.g.
 * without the ledger, to see its share of the machine). BENCH_DETAIL=1 adds, per Sluice run, the
 * median time between consecutive events of a request (as the bench sees them arrive on the bus)
 * and the CPU each process spent per request, and the idle CPU of every process. After each Sluice
 * run the ledger's lag is printed (waiting for it keeps the next run from paying for this one's
 * backlog); the end prints each process's resident memory. BENCH_PROMPT_BYTES pads every prompt to
 * about that many bytes; BENCH_JSON=1 adds the rows as JSON.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { ServiceName } from '@sluice/contracts';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
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
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

/** Numbers every request of the whole run (warm-up included), so no body is ever sent twice and the cache never hits. */
let sent = 0;

/** Runs `call` from `concurrency` loops for `seconds`; each loop issues one request at a time. */
async function drive(concurrency: number, call: (i: number) => Promise<boolean>): Promise<Run> {
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const until = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const t0 = performance.now();
        const ok = await call(sent++).catch(() => false);
        if (ok) latencies.push(performance.now() - t0);
        else errors++;
      }
    }),
  );
  return { latencies: latencies.sort((a, b) => a - b), errors, elapsedMs: performance.now() - start };
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const fmt = (ms: number) => (Number.isFinite(ms) ? ms.toFixed(2).padStart(7) : '    n/a');
/** A column that some paths do not have: blank there. */
const col = (n: number | undefined, width: number, digits = 2, suffix = '') => (n === undefined ? '' : `${n.toFixed(digits)}${suffix}`).padStart(width);

/**
 * Starts Portkey's Node server (the package's `bin`) on `port`, headless (no console UI or log
 * stream), and resolves once it answers. Its stdout is only a start banner; errors reach stderr.
 */
async function startPortkey(port: number): Promise<ChildProcess> {
  const pkg = fileURLToPath(import.meta.resolve('@portkey-ai/gateway/package.json'));
  const { bin } = JSON.parse(readFileSync(pkg, 'utf8')) as { bin: string };
  const proc = spawn(process.execPath, [join(dirname(pkg), bin), `--port=${port}`, '--headless'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const until = performance.now() + 30_000;
  while (performance.now() < until) {
    if (proc.exitCode !== null) throw new Error(`Portkey exited with code ${proc.exitCode} before answering on port ${port}`);
    const answers = await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined);
    if (answers?.ok) return proc;
    await sleep(100);
  }
  proc.kill();
  throw new Error(`Portkey did not answer on port ${port} within 30 s`);
}

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
const portkeyPort = await freePort();
const portkey = !pathFilter || pathFilter.has('portkey') ? await startPortkey(portkeyPort) : undefined;
process.once('exit', () => portkey?.kill());
const nc = await connect({ servers: stack.natsUrl });
const client = new SluiceClient(nc, { tenant: 'dev', key: KEY, timeoutMs: 30_000 });
// BENCH_PROMPT_BYTES pads each prompt (a long conversation), to see what the body costs each hop
const padding = ' context'.repeat(Math.ceil(Number(process.env.BENCH_PROMPT_BYTES ?? 0) / 8));
const message = (i: number) => [{ role: 'user' as const, content: `Benchmark request ${i}: summarise the benefits of backpressure in one line.${padding}` }];
const direct = new URL(`${stack.sim!.url}/chat/completions`);
const gateway = new URL(`${stack.ingressUrl}/v1/chat/completions`);
const peer = new URL(`http://127.0.0.1:${portkeyPort}/v1/chat/completions`);
// Portkey's documented way to an OpenAI-compatible upstream: the openai provider at a custom host (base URL with /v1)
const peerHeaders = { authorization: 'Bearer sk-bench-upstream', 'x-portkey-provider': 'openai', 'x-portkey-custom-host': stack.sim!.url };
const body = (i: number) => JSON.stringify({ model: 'gpt-4o-mini', messages: message(i) });

const allPaths: Record<string, (i: number) => Promise<boolean>> = {
  direct: async (i) => (await post(direct, body(i), {})) === 200,
  portkey: async (i) => (await post(peer, body(i), peerHeaders)) === 200,
  http: async (i) => (await post(gateway, body(i), { authorization: `Bearer ${KEY}` })) === 200,
  nats: async (i) => {
    const r = await client.chat({ model: 'gpt-4o-mini', messages: message(i) });
    return r.usage.completion_tokens > 0;
  },
};

const paths = Object.fromEntries(Object.entries(allPaths).filter(([name]) => name === 'direct' || !pathFilter || pathFilter.has(name)));
const isSluice = (path: string) => path === 'http' || path === 'nats';

// warm up JIT, connections and consumers
for (const call of Object.values(paths)) await drive(8, call).catch(() => undefined);

// --- what each target's processes spend: /proc reads, cheap enough to take around every run ---
const TICK_MS = 1000 / 100; // USER_HZ
type Roots = Array<[string, number | undefined]>;
/** Every service's and nats-server's pid, by name (a service between restarts has none). */
function stackPids(): Roots {
  return [...[...stack.services].map(([n, s]): [string, number | undefined] => [n, s.pid]), ['nats-server', stack.nats?.process.pid]];
}
const portkeyPids = (): Roots => [['portkey', portkey?.pid]];

/** The fields of /proc/<pid>/stat after the command name (state is [0], ppid [1], utime [11], stime [12]). */
function statFields(pid: number | string): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
  } catch {
    return undefined; // gone
  }
}
/** A /proc/<pid>/status field in MiB (VmRSS: resident now, VmHWM: peak resident). */
function statusMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${field}:`));
    return Number(/(\d+) kB/.exec(line ?? '')?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

interface Usage {
  cpuMs: number;
  rssMiB: number;
}
/** CPU ms so far and resident MiB now of each root process, its descendants (live ones) counted with it. */
function usage(roots: Roots): Map<string, Usage> {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    const ppid = /^\d+$/.test(entry) ? Number(statFields(entry)?.[1]) : NaN;
    if (Number.isFinite(ppid)) children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const out = new Map<string, Usage>();
  for (const [name, root] of roots) {
    if (!root) continue;
    const u = { cpuMs: 0, rssMiB: 0 };
    for (const pids = [root]; pids.length > 0;) {
      const pid = pids.pop()!;
      const f = statFields(pid);
      if (f) u.cpuMs += (Number(f[11]) + Number(f[12])) * TICK_MS;
      u.rssMiB += statusMiB(pid, 'VmRSS');
      pids.push(...(children.get(pid) ?? []));
    }
    out.set(name, u);
  }
  return out;
}
const sum = (m: Map<string, Usage>, key: keyof Usage) => [...m.values()].reduce((s, u) => s + u[key], 0);
const benchCpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** Resident memory (MB) of every service, nats-server and Portkey: now, and the peak since start (VmHWM). */
function memoryLine(): string {
  const parts = [...stackPids(), ...portkeyPids()].flatMap(([name, pid]) =>
    pid ? [`${name} ${statusMiB(pid, 'VmRSS').toFixed(0)}/${statusMiB(pid, 'VmHWM').toFixed(0)}`] : [],
  );
  return `memory MB (resident now/peak): ${parts.join(', ')}\n`;
}

// --- BENCH_DETAIL: where a Sluice request's time and the machine's CPU go ---
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

/** Each process's CPU per request (this one, client and simulator, as bench+sim), and the median gap between a request's events. */
function describeRun(name: string, c: number, requests: number, before: Map<string, Usage>, after: Map<string, Usage>, benchMs: number): string {
  const perRequest = (ms: number) => (ms / Math.max(1, requests)).toFixed(2);
  const cpu = [...after].map(([n, u]) => `${n} ${perRequest(u.cpuMs - (before.get(n)?.cpuMs ?? 0))}`);
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
  return `${name} c=${c}: CPU ms/request ${cpu.join(', ')}, bench+sim ${perRequest(benchMs)}\n  event gaps p50 ms: ${common.join(', ')}\n`;
}

if (detail) {
  // what each process burns with no traffic at all (after the warm-up's backlog drained)
  await sleep(2000);
  const roots = [...stackPids(), ...portkeyPids()];
  const [before, bench0] = [usage(roots), benchCpuMs()];
  await sleep(3000);
  const idle = [...usage(roots)].map(([n, u]) => `${n} ${(((u.cpuMs - (before.get(n)?.cpuMs ?? 0)) / 3000) * 100).toFixed(1)}%`);
  details.push(`idle CPU: ${idle.join(', ')}, bench+sim ${(((benchCpuMs() - bench0) / 3000) * 100).toFixed(1)}%\n`);
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
  while ((await position()).seq < last && performance.now() - t0 < 60_000) await sleep(20);
  return `ledger ${behind} events behind at the end, caught up in ${Math.round(performance.now() - t0)} ms`;
}

interface Row {
  path: string;
  concurrency: number;
  rps: number;
  p50: number;
  p95: number;
  p99: number;
  errors: number;
  addedP50?: number;
  addedP95?: number;
  addedP99?: number;
  /** CPU ms per request over every process of the target (not for direct: the simulator runs inside the bench). */
  cpuMsPerRequest?: number;
  /** Resident MiB of the target's processes when its run at this level ended. */
  rssMiB?: number;
  /** Bytes appended to SLUICE_EVENTS per request (Sluice only). */
  bytesPerRequest?: number;
  rpsVsPortkey?: number;
  cpuVsPortkey?: number;
}

const cpus = (await import('node:os')).cpus().length;
process.stdout.write(
  `\nSluice benchmark — ${cpus} cores, node ${process.version}, ${seconds}s per run, simulator latency 0 ms, body ${Buffer.byteLength(body(0))} B, cache on\n`,
);
process.stdout.write(
  'path    conc   req/s  p50 ms  p95 ms  p99 ms errors | +p50 ms +p95 ms +p99 ms  /direct | CPU ms/req RSS MiB  B/req | vs Portkey: req/s   CPU\n',
);
const rows: Row[] = [];
const lags: string[] = [];
const jsm = await jetstreamManager(nc);
const streamBytes = async () => (await jsm.streams.info('SLUICE_EVENTS')).state.bytes;
for (const c of levels) {
  const results = new Map<string, { run: Run; cpuMsPerRequest?: number; rssMiB?: number; bytesPerRequest?: number }>();
  for (const [name, call] of Object.entries(paths)) {
    const roots = name === 'direct' ? undefined : isSluice(name) ? stackPids() : portkeyPids();
    hops.clear();
    const [before, bench0, bytes0] = [roots && usage(roots), benchCpuMs(), isSluice(name) ? await streamBytes() : 0];
    const run = await drive(c, call);
    const requests = Math.max(1, run.latencies.length + run.errors);
    if (isSluice(name)) lags.push(`${name} c=${c}: ${await ledgerLag()}\n`);
    const after = roots && usage(roots);
    if (!before || !after) {
      results.set(name, { run });
      continue;
    }
    results.set(name, {
      run,
      cpuMsPerRequest: (sum(after, 'cpuMs') - sum(before, 'cpuMs')) / requests,
      rssMiB: sum(after, 'rssMiB'),
      ...(isSluice(name) ? { bytesPerRequest: ((await streamBytes()) - bytes0) / requests } : {}),
    });
    if (detail && isSluice(name)) details.push(describeRun(name, c, requests, before, after, benchCpuMs() - bench0));
  }
  const d = results.get('direct')!.run.latencies;
  const pk = results.get('portkey');
  const pkRps = pk && (pk.run.latencies.length / pk.run.elapsedMs) * 1000;
  for (const [name, { run, cpuMsPerRequest, rssMiB, bytesPerRequest }] of results) {
    const rps = (run.latencies.length / run.elapsedMs) * 1000;
    const [p50, p95, p99] = [50, 95, 99].map((p) => pct(run.latencies, p)) as [number, number, number];
    const row: Row = { path: name, concurrency: c, rps: Math.round(rps), p50, p95, p99, errors: run.errors };
    if (name !== 'direct') {
      Object.assign(row, { addedP50: p50 - pct(d, 50), addedP95: p95 - pct(d, 95), addedP99: p99 - pct(d, 99), cpuMsPerRequest, rssMiB, bytesPerRequest });
      if (pk && pkRps) Object.assign(row, { rpsVsPortkey: rps / pkRps, cpuVsPortkey: cpuMsPerRequest! / pk.cpuMsPerRequest! });
    }
    const added = name === 'direct' ? ''.padEnd(32) : `${fmt(row.addedP50!)} ${fmt(row.addedP95!)} ${fmt(row.addedP99!)} ${col(p50 / pct(d, 50), 8, 1, 'x')}`;
    const line =
      `${name.padEnd(7)} ${String(c).padStart(4)} ${rps.toFixed(0).padStart(7)} ${fmt(p50)} ${fmt(p95)} ${fmt(p99)} ${String(run.errors).padStart(6)} |` +
      ` ${added} | ${col(cpuMsPerRequest, 10)} ${col(rssMiB, 7, 0)} ${col(bytesPerRequest, 6, 0)} |` +
      ` ${col(row.rpsVsPortkey, 17, 2, 'x')} ${col(row.cpuVsPortkey, 5, 2, 'x')}`;
    process.stdout.write(`${line.trimEnd()}\n`);
    rows.push(row);
  }
}
for (const l of lags) process.stdout.write(l);
for (const d of details) process.stdout.write(d);
process.stdout.write(memoryLine());
if (process.env.BENCH_JSON) process.stdout.write(`${JSON.stringify(rows)}\n`);
await nc.close();
await stack.stop();
if (portkey && portkey.exitCode === null) {
  const exited = new Promise((r) => portkey.once('exit', r));
  portkey.kill();
  await exited;
}
agent.destroy();
rmSync(dataDir, { recursive: true, force: true });
