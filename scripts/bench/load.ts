import { Agent, request } from 'node:http';

/** How one request ended: answered (`cached` when the gateway says the exact cache answered it), or not. */
type Answered = 'ok' | 'cached' | 'failed';
/** Sends request number `i` of the run. */
export type Call = (i: number) => Promise<Answered>;

export interface Run {
  /** Latencies of the answered requests, sorted. */
  latencies: number[];
  errors: number;
  /** Answered requests the exact cache answered. */
  cached: number;
  elapsedMs: number;
}

const agent = new Agent({ keepAlive: true, maxSockets: 1024 });

/** Closes the kept-alive sockets, so the process can exit. */
export const closeConnections = () => agent.destroy();

/** POSTs a JSON body over a kept-alive connection; resolves with the status and the gateway's `x-sluice-cache` header. */
export function post(url: URL, body: string, headers: Record<string, string>): Promise<{ status: number; cache: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, cache: res.headers['x-sluice-cache'] as string | undefined }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Numbers every request of the whole run (warm-ups included), so a body is never sent twice unless a workload repeats it on purpose. */
let sent = 0;

/** How many requests have been sent so far, by every `drive`. */
export const requestsSent = () => sent;

/** Runs `call` from `concurrency` loops for `seconds`; each loop issues one request at a time. */
export async function drive(seconds: number, concurrency: number, call: Call): Promise<Run> {
  const latencies: number[] = [];
  let errors = 0;
  let cached = 0;
  const start = performance.now();
  const until = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const t0 = performance.now();
        const answered = await call(sent++).catch((): Answered => 'failed');
        if (answered === 'failed') errors++;
        else latencies.push(performance.now() - t0);
        if (answered === 'cached') cached++;
      }
    }),
  );
  return { latencies: latencies.sort((a, b) => a - b), errors, cached, elapsedMs: performance.now() - start };
}

/** The p-th percentile of sorted values (NaN when there are none). */
export const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
export const requestsPerSecond = (run: Run) => (run.latencies.length / run.elapsedMs) * 1000;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
