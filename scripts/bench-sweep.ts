/**
 * `npm run bench:sweep`: how the gateway's cost grows, one table per sweep, each row a fresh
 * measurement of the same path (the HTTP door unless BENCH_SWEEP_PATH=nats) on the stack
 * `npm run bench` uses (every service its own process, private nats-server, PGlite, the
 * simulator at zero latency, cache on, tracing off unless the sweep turns it on):
 *   concurrency — 1, 8, 32 and 128 in flight (BENCH_LEVELS);
 *   prompt      — prompts of about 0.1, 4, 16 and 64 KB (BENCH_PROMPT_SIZES, bytes);
 *   cache       — 0 %, 50 % and 90 % of requests repeating a whole body sent before, so that
 *                 share hits the exact cache (BENCH_HIT_RATES); the hit rate the gateway reported
 *                 (`x-sluice-cache`) is printed beside the one asked for;
 *   replicas    — one process of each service against two of the invoker and the limiter;
 *   tracing     — tracing off, on at a parent-based 10 % ratio (the recommended production
 *                 setting) and on at 100 %, exporting OTLP/HTTP to a receiver inside the bench
 *                 that counts spans (BENCH_TRACE_RATIOS, e.g. off,0.1,1); at the sweep
 *                 concurrency and at 1 in flight, for the latency tracing adds.
 * BENCH_SWEEPS picks sweeps (default all, in that order); each but concurrency runs at
 * BENCH_SWEEP_CONCURRENCY (default 32) in flight. BENCH_SECONDS (default 5) per run.
 * Sweeps that change how the services run (replicas, tracing) start a stack for each row; the
 * others share one. Every row is read after the ledger caught up, as in `npm run bench`, and
 * ratios are to the sweep's first row: on a noisy machine, compare within one table.
 */
import { cpus } from 'node:os';
import type { ServiceName } from '@sluice/contracts';
import { closeConnections, drive, pct, requestsPerSecond, requestsSent, sleep, type Call } from './bench/load.js';
import { startOtlpReceiver } from './bench/otlp.js';
import { startBenchStack, type BenchStack, type BenchStackOptions, type Measured } from './bench/sluice.js';
import { num, table, times } from './bench/table.js';
import { POOL_SIZE, type Workload } from './bench/workload.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const list = (name: string, fallback: string) => (process.env[name] ?? fallback).split(',').map((s) => s.trim());
const sweeps = new Set(list('BENCH_SWEEPS', 'concurrency,prompt,cache,replicas,tracing'));
const path = process.env.BENCH_SWEEP_PATH === 'nats' ? 'nats' : 'http';
const concurrency = Number(process.env.BENCH_SWEEP_CONCURRENCY ?? 32);
const SHORT: Workload = { promptBytes: 0, repeatRate: 0 };

const pathOf = (b: BenchStack, w: Workload): Call => (path === 'nats' ? b.nats(w) : b.http(w));

/** Starts a stack, warms it (JIT, connections, consumers) and hands it to `fn`; always closes it. */
async function withStack<T>(opts: BenchStackOptions, fn: (b: BenchStack) => Promise<T>): Promise<T> {
  const b = await startBenchStack(opts);
  try {
    await drive(Math.min(seconds, 3), 8, pathOf(b, SHORT));
    return await fn(b);
  } finally {
    await b.close();
  }
}

interface Row {
  label: string;
  m: Measured;
  /** Extra cells, after the common ones. */
  extra?: string[];
}

const COMMON = ['req/s', 'p50 ms', 'p99 ms', 'errors', 'CPU ms/req', 'req/s vs first', 'CPU vs first'];

function render(title: string, first: string, rows: Row[], extra: string[] = []): string {
  const base = rows[0]!.m;
  return table(
    title,
    [first, ...COMMON, ...extra],
    rows.map(({ label, m, extra: cells = [] }) => [
      label,
      requestsPerSecond(m.run).toFixed(0),
      num(pct(m.run.latencies, 50)),
      num(pct(m.run.latencies, 99)),
      String(m.run.errors),
      num(m.cpuMsPerRequest),
      times(requestsPerSecond(m.run) / requestsPerSecond(base.run)),
      times(m.cpuMsPerRequest / base.cpuMsPerRequest),
      ...cells,
    ]),
  );
}

const out = (s: string) => process.stdout.write(s);
out(`\nSluice sweeps — ${cpus().length} cores, node ${process.version}, ${seconds}s per run, ${path} door, simulator latency 0 ms, cache on\n`);

if (sweeps.has('concurrency') || sweeps.has('prompt') || sweeps.has('cache')) {
  await withStack({}, async (b) => {
    if (sweeps.has('concurrency')) {
      const rows: Row[] = [];
      for (const c of list('BENCH_LEVELS', '1,8,32,128').map(Number)) rows.push({ label: String(c), m: await b.measure(seconds, c, pathOf(b, SHORT)) });
      out(render('By requests in flight (137-byte body, unique bodies)', 'in flight', rows));
    }
    if (sweeps.has('prompt')) {
      const rows: Row[] = [];
      for (const bytes of list('BENCH_PROMPT_SIZES', '100,4096,16384,65536').map(Number)) {
        const w = { promptBytes: bytes, repeatRate: 0 };
        await drive(1, concurrency, pathOf(b, w)); // the larger bodies' code paths warm too
        const m = await b.measure(seconds, concurrency, pathOf(b, w));
        rows.push({ label: `${(bytes / 1024).toFixed(1)} KB`, m, extra: [num(m.bytesPerRequest, 0)] });
      }
      out(render(`By prompt size (${concurrency} in flight, unique bodies)`, 'prompt', rows, ['B appended/req']));
    }
    if (sweeps.has('cache')) {
      // every pool body answered once and stored before any run repeats it
      const pool = pathOf(b, { promptBytes: 0, repeatRate: 1 });
      for (let k = 0; k < POOL_SIZE; k++) await pool(k);
      await sleep(500);
      const rows: Row[] = [];
      for (const rate of list('BENCH_HIT_RATES', '0,0.5,0.9').map(Number)) {
        const m = await b.measure(seconds, concurrency, pathOf(b, { promptBytes: 0, repeatRate: rate }));
        const hits = m.run.cached / Math.max(1, m.run.latencies.length);
        rows.push({ label: `${(rate * 100).toFixed(0)} %`, m, extra: [`${(hits * 100).toFixed(1)} %`, num(m.bytesPerRequest, 0)] });
      }
      out(render(`By exact-cache hit rate (${concurrency} in flight, 137-byte body)`, 'repeated', rows, ['hits', 'B appended/req']));
    }
  });
}

if (sweeps.has('replicas')) {
  const rows: Row[] = [];
  for (const n of [1, 2]) {
    const replicas: Partial<Record<ServiceName, number>> = { invoker: n, limiter: n };
    rows.push(
      await withStack({ replicas }, async (b) => ({
        label: n === 1 ? 'one of each' : 'invoker ×2, limiter ×2',
        m: await b.measure(seconds, concurrency, pathOf(b, SHORT)),
      })),
    );
  }
  out(render(`By replicas (${concurrency} in flight, 137-byte body, CPU summed over every process)`, 'processes', rows));
}

/** OTEL_BSP_SCHEDULE_DELAY in the tracing sweep, and a little more: how long a span can wait in its batch. */
const EXPORT_DELAY_MS = 1000;
const EXPORT_SETTLE_MS = EXPORT_DELAY_MS + 300;

if (sweeps.has('tracing')) {
  const receiver = await startOtlpReceiver();
  const rows: Row[] = [];
  const atOne: Array<{ p50: number; direct: number }> = [];
  for (const ratio of list('BENCH_TRACE_RATIOS', 'off,0.1,1')) {
    const env: NodeJS.ProcessEnv =
      ratio === 'off'
        ? { OTEL_EXPORTER_OTLP_ENDPOINT: undefined, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: undefined }
        : {
            OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
            OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
            OTEL_TRACES_SAMPLER_ARG: ratio,
            // spans leave within a second, so a run's CPU includes exporting them (the default waits 5 s)
            OTEL_BSP_SCHEDULE_DELAY: String(EXPORT_DELAY_MS),
          };
    const [spans0, sent0] = [receiver.spans(), requestsSent()];
    let directRequests = 0;
    const row = await withStack({ env }, async (b) => {
      const direct = await drive(seconds, 1, b.direct(SHORT));
      directRequests = direct.latencies.length + direct.errors;
      // every row waits as long, so the spans a run leaves batched are exported (and paid) before its CPU is read
      const one = await b.measure(seconds, 1, pathOf(b, SHORT), EXPORT_SETTLE_MS);
      const m = await b.measure(seconds, concurrency, pathOf(b, SHORT), EXPORT_SETTLE_MS);
      atOne.push({ p50: pct(one.run.latencies, 50), direct: pct(direct.latencies, 50) });
      return { m, one };
    });
    // the stack's shutdown flushed what was left: spans per gateway request over its warm-up and both runs
    const spansPerRequest = (receiver.spans() - spans0) / (requestsSent() - sent0 - directRequests);
    const [o, off] = [atOne.at(-1)!, atOne[0]!];
    rows.push({
      label: ratio === 'off' ? 'off' : `${Number(ratio) * 100} %`,
      m: row.m,
      extra: [
        num(row.one.cpuMsPerRequest),
        num(o.p50 - o.direct),
        num(o.p50 - o.direct - (off.p50 - off.direct)),
        ratio === 'off' ? '' : num(spansPerRequest, 1),
      ],
    });
  }
  await receiver.close();
  out(
    render(`By tracing (${concurrency} in flight; at 1 in flight: CPU, added p50 over direct, and over tracing off)`, 'sampled', rows, [
      'c=1 CPU ms/req',
      'c=1 +p50 ms',
      'vs off',
      'spans/req',
    ]),
  );
}
closeConnections();
