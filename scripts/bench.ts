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
 * in production (Portkey's cache is off unless a config asks for it). The shipped config opts the dev
 * tenant in to the semantic cache, so every miss also embeds its question, searches the index and
 * writes an entry; BENCH_SEMANTIC=0 turns that off to measure what it costs.
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
 * about that many bytes; BENCH_JSON=1 adds the rows as JSON. BENCH_DATABASE_URL puts the ledger on
 * that Postgres database (empty: it migrates it) instead of PGlite; the database's own processes
 * are not counted. BENCH_STREAM=1 (the default; 0 turns
 * it off) adds a table of streamed requests (`stream: true`) at each level for direct and the HTTP
 * door (Portkey 1.15.2 cannot stream on Node: see below): requests/s and the time to the first
 * chunk of the answer (p50/p99, and added over direct's), what a chat UI waits for before it
 * shows a token.
 *
 * How cost grows (concurrency, prompt size, cache hits, replicas, tracing) is `npm run bench:sweep`
 * (bench-sweep.ts); the pieces both share are under bench/.
 */
import { cpus } from 'node:os';
import type { ServiceName } from '@sluice/contracts';
import { freePort } from '@sluice/bus/nats-server';
import { closeConnections, drive, pct, post, requestsPerSecond, type Call, type Run } from './bench/load.js';
import { startPortkey, stopPortkey } from './bench/portkey.js';
import { memoryLine, sum, usage, type Roots } from './bench/procs.js';
import { startBenchStack } from './bench/sluice.js';
import { idleCpu, watchHops } from './bench/detail.js';
import { messagesOf, type Workload } from './bench/workload.js';
import { closeStreamConnections, streamCall, type StreamCall } from './bench/stream.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const levels = (process.env.BENCH_LEVELS ?? '1,8,32,128').split(',').map(Number);
const only = (list: string | undefined) => (list ? new Set(list.split(',')) : undefined);
const pathFilter = only(process.env.BENCH_PATHS);
const serviceList = process.env.BENCH_SERVICES?.split(',') as ServiceName[] | undefined;
const detail = process.env.BENCH_DETAIL === '1';
const streams = process.env.BENCH_STREAM !== '0';
// BENCH_PROMPT_BYTES pads each prompt (a long conversation), to see what the body costs each hop
const workload: Workload = { promptBytes: Number(process.env.BENCH_PROMPT_BYTES ?? 0), repeatRate: 0 };

const fmt = (ms: number) => (Number.isFinite(ms) ? ms.toFixed(2).padStart(7) : '    n/a');
/** A column that some paths do not have: blank there. */
const col = (n: number | undefined, width: number, digits = 2, suffix = '') => (n === undefined ? '' : `${n.toFixed(digits)}${suffix}`).padStart(width);

const sluice = await startBenchStack(serviceList ? { services: serviceList } : {});
const portkeyPort = await freePort();
const portkey = !pathFilter || pathFilter.has('portkey') ? await startPortkey(portkeyPort) : undefined;
process.once('exit', () => portkey?.kill());
const peer = new URL(`http://127.0.0.1:${portkeyPort}/v1/chat/completions`);
// Portkey's documented way to an OpenAI-compatible upstream: the openai provider at a custom host (base URL with /v1)
const peerHeaders = { authorization: 'Bearer sk-bench-upstream', 'x-portkey-provider': 'openai', 'x-portkey-custom-host': sluice.stack.sim!.url };
const messages = messagesOf(workload);
const body = (i: number) => JSON.stringify({ model: 'gpt-4o-mini', messages: messages(i) });

const allPaths: Record<string, Call> = {
  direct: sluice.direct(workload),
  portkey: async (i) => ((await post(peer, body(i), peerHeaders)).status === 200 ? 'ok' : 'failed'),
  http: sluice.http(workload),
  nats: sluice.nats(workload),
};

// streamed: the time to the first chunk is what counts (BENCH_STREAM). Not Portkey: 1.15.2 on
// Node fails every streamed request ("TypeError: immutable" in its updateHeaders; its issues #1389
// and #1550), whichever @hono/node-server it runs on
const streamBody = (i: number) => JSON.stringify({ model: 'gpt-4o-mini', messages: messages(i), stream: true });
const streamPaths: Record<string, () => StreamCall> = {
  direct: () => streamCall(new URL(`${sluice.stack.sim!.url}/chat/completions`), streamBody, {}),
  http: () => streamCall(new URL(`${sluice.stack.ingressUrl}/v1/chat/completions`), streamBody, { authorization: 'Bearer sk-bench' }),
};

const paths = Object.fromEntries(Object.entries(allPaths).filter(([name]) => name === 'direct' || !pathFilter || pathFilter.has(name)));
const isSluice = (path: string) => path === 'http' || path === 'nats';
const portkeyPids = (): Roots => [['portkey', portkey?.pid]];

// warm up JIT, connections and consumers
for (const call of Object.values(paths)) await drive(seconds, 8, call).catch(() => undefined);

const hops = detail ? watchHops(sluice.nc) : undefined;
const details: string[] = detail ? [await idleCpu([...sluice.pids(), ...portkeyPids()])] : [];

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

process.stdout.write(
  `\nSluice benchmark — ${cpus().length} cores, node ${process.version}, ${seconds}s per run, simulator latency 0 ms, body ${Buffer.byteLength(body(0))} B, cache on, semantic ${process.env.BENCH_SEMANTIC === '0' ? 'off' : 'on'}\n`,
);
process.stdout.write(
  'path    conc   req/s  p50 ms  p95 ms  p99 ms errors | +p50 ms +p95 ms +p99 ms  /direct | CPU ms/req RSS MiB  B/req | vs Portkey: req/s   CPU\n',
);
const rows: Row[] = [];
const lags: string[] = [];
for (const c of levels) {
  const results = new Map<string, { run: Run; cpuMsPerRequest?: number; rssMiB?: number; bytesPerRequest?: number }>();
  for (const [name, call] of Object.entries(paths)) {
    if (isSluice(name)) {
      hops?.clear();
      const m = await sluice.measure(seconds, c, call);
      lags.push(`${name} c=${c}: ${m.ledger}\n`);
      results.set(name, m);
      if (hops) details.push(hops.describe(name, c, m));
    } else if (name === 'portkey') {
      const before = usage(portkeyPids());
      const run = await drive(seconds, c, call);
      const after = usage(portkeyPids());
      const requests = Math.max(1, run.latencies.length + run.errors);
      results.set(name, { run, cpuMsPerRequest: (sum(after, 'cpuMs') - sum(before, 'cpuMs')) / requests, rssMiB: sum(after, 'rssMiB') });
    } else {
      results.set(name, { run: await drive(seconds, c, call) });
    }
  }
  const d = results.get('direct')!.run.latencies;
  const pk = results.get('portkey');
  const pkRps = pk && requestsPerSecond(pk.run);
  for (const [name, { run, cpuMsPerRequest, rssMiB, bytesPerRequest }] of results) {
    const rps = requestsPerSecond(run);
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
if (streams) {
  const wanted = Object.keys(streamPaths).filter((name) => name === 'direct' || !pathFilter || pathFilter.has(name));
  process.stdout.write('\nstreamed (stream: true): time to first chunk\npath    conc   req/s  TTFT p50  TTFT p99 errors | +TTFT p50 +TTFT p99\n');
  for (const c of levels) {
    const got = new Map<string, { run: Run; first: number[] }>();
    for (const name of wanted) {
      const s = streamPaths[name]!();
      const run = await drive(seconds, c, s.call);
      got.set(name, { run, first: s.firstChunkMs.sort((a, b) => a - b) });
    }
    const d = got.get('direct')!.first;
    for (const [name, { run, first }] of got) {
      const [p50, p99] = [pct(first, 50), pct(first, 99)];
      const added = name === 'direct' ? '' : `${fmt(p50 - pct(d, 50))}   ${fmt(p99 - pct(d, 99))}`;
      process.stdout.write(
        `${name.padEnd(7)} ${String(c).padStart(4)} ${requestsPerSecond(run).toFixed(0).padStart(7)}   ${fmt(p50)}   ${fmt(p99)} ${String(run.errors).padStart(6)} | ${added}`.trimEnd() +
          '\n',
      );
      rows.push({ path: `${name}-stream`, concurrency: c, rps: Math.round(requestsPerSecond(run)), p50, p95: pct(first, 95), p99, errors: run.errors });
    }
  }
}
for (const l of lags) process.stdout.write(l);
for (const d of details) process.stdout.write(d);
process.stdout.write(memoryLine([...sluice.pids(), ...portkeyPids()]));
if (process.env.BENCH_JSON) process.stdout.write(`${JSON.stringify(rows)}\n`);
await sluice.close();
if (portkey) await stopPortkey(portkey);
closeConnections();
closeStreamConnections();
