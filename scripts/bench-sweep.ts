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
 * BENCH_ROUNDS (default 1) repeats the replicas and tracing sweeps, every variant once a round,
 * and pools each variant's runs: the machine's slow minutes then fall on all of them alike.
 * Sweeps that change how the services run (replicas, tracing) start a stack for each row; the
 * others share one. Every row is read after the ledger caught up, as in `npm run bench`, and
 * ratios are to the sweep's first row: on a noisy machine, compare within one table.
 */
import { cpus } from 'node:os';
import { closeConnections, drive, pct, requestsPerSecond, requestsSent, sleep, type Call } from './bench/load.js';
import { startOtlpReceiver } from './bench/otlp.js';
import { pooled, startBenchStack, type BenchStack, type BenchStackOptions, type Measured } from './bench/sluice.js';
import { num, table, times } from './bench/table.js';
import { POOL_SIZE, type Workload } from './bench/workload.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const list = (name: string, fallback: string) => (process.env[name] ?? fallback).split(',').map((s) => s.trim());
const sweeps = new Set(list('BENCH_SWEEPS', 'concurrency,prompt,cache,replicas,tracing'));
const path = process.env.BENCH_SWEEP_PATH === 'nats' ? 'nats' : 'http';
const concurrency = Number(process.env.BENCH_SWEEP_CONCURRENCY ?? 32);
const rounds = Number(process.env.BENCH_ROUNDS ?? 1);
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

/**
 * Runs `measure` for each variant, all variants once per round (BENCH_ROUNDS, default 1), so a
 * slow minute on this machine falls on every variant alike; each variant's runs are then pooled.
 */
async function alternate<T>(variants: readonly string[], measure: (variant: string) => Promise<T>): Promise<Map<string, T[]>> {
  const results = new Map(variants.map((v) => [v, [] as T[]]));
  for (let round = 0; round < rounds; round++) for (const v of variants) results.get(v)!.push(await measure(v));
  return results;
}

if (sweeps.has('replicas')) {
  const counts = ['1', '2'];
  const runs = await alternate(counts, (n) =>
    withStack({ replicas: { invoker: Number(n), limiter: Number(n) } }, (b) => b.measure(seconds, concurrency, pathOf(b, SHORT))),
  );
  const rows = counts.map((n) => ({ label: n === '1' ? 'one of each' : 'invoker ×2, limiter ×2', m: pooled(runs.get(n)!) }));
  out(render(`By replicas (${concurrency} in flight, 137-byte body, CPU summed over every process)`, 'processes', rows));
}

/** OTEL_BSP_SCHEDULE_DELAY in the tracing sweep, and a little more: how long a span can wait in its batch. */
const EXPORT_DELAY_MS = 1000;
const EXPORT_SETTLE_MS = EXPORT_DELAY_MS + 300;

if (sweeps.has('tracing')) {
  const receiver = await startOtlpReceiver();
  const ratios = list('BENCH_TRACE_RATIOS', 'off,0.1,1');
  const runs = await alternate(ratios, async (ratio) => {
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
    const measured = await withStack({ env }, async (b) => {
      const direct = await drive(seconds, 1, b.direct(SHORT));
      // every row waits as long, so the spans a run leaves batched are exported (and paid) before its CPU is read
      const one = await b.measure(seconds, 1, pathOf(b, SHORT), EXPORT_SETTLE_MS);
      const m = await b.measure(seconds, concurrency, pathOf(b, SHORT), EXPORT_SETTLE_MS);
      return { direct, one, m };
    });
    // the stack's shutdown flushed what was left: spans over every gateway request of its life, warm-up included
    const gatewayRequests = requestsSent() - sent0 - (measured.direct.latencies.length + measured.direct.errors);
    return { ...measured, spans: receiver.spans() - spans0, gatewayRequests };
  });
  await receiver.close();
  /** At 1 in flight: the gateway's p50 over the simulator's, measured just before on the same stack. */
  const addedP50 = (ratio: string) => {
    const all = runs.get(ratio)!;
    return (
      pct(pooled(all.map((r) => r.one)).run.latencies, 50) -
      pct(
        all.flatMap((r) => r.direct.latencies).sort((a, b) => a - b),
        50,
      )
    );
  };
  const rows = ratios.map((ratio) => {
    const all = runs.get(ratio)!;
    const spans = all.reduce((s, r) => s + r.spans, 0) / all.reduce((s, r) => s + r.gatewayRequests, 0);
    return {
      label: ratio === 'off' ? 'off' : `${Number(ratio) * 100} %`,
      m: pooled(all.map((r) => r.m)),
      extra: [
        num(pooled(all.map((r) => r.one)).cpuMsPerRequest),
        num(addedP50(ratio)),
        num(addedP50(ratio) - addedP50(ratios[0]!)),
        ratio === 'off' ? '' : num(spans, 1),
      ],
    };
  });
  out(
    render(`By tracing (${concurrency} in flight; at 1 in flight: CPU, added p50 over direct, and over the first row)`, 'sampled', rows, [
      'c=1 CPU ms/req',
      'c=1 +p50 ms',
      'vs first',
      'spans/req',
    ]),
  );
}
closeConnections();
