/** What a run sends: how long each prompt is, and how often a body is one sent before. */
export interface Workload {
  /** Pads every prompt to about this many bytes (0: the short prompt alone, a ~137-byte body). */
  promptBytes: number;
  /** Fraction of requests, 0 to 1, that repeat a whole body from the pool (the cache key covers the body). */
  repeatRate: number;
}

/** One user message: the prompt. */
type Messages = [{ role: 'user'; content: string }];

/** How many bodies the repeated requests cycle through; `warmPool` sends each once before a run, so a repeat finds it cached. */
export const POOL_SIZE = 100;

const GOLDEN = 0.6180339887498949;
/** Spreads the repeats evenly over the run: request i repeats when the fractional part of i·φ falls below the rate. */
const repeats = (i: number, rate: number) => (i * GOLDEN) % 1 < rate;

/** The messages of request `i`: unique across the run, or, for a repeat, pool body `i mod POOL_SIZE`. */
export function messagesOf(w: Workload): (i: number) => Messages {
  const padding = ' context'.repeat(Math.ceil(Math.max(0, w.promptBytes - 120) / 8));
  return (i) => {
    const id = repeats(i, w.repeatRate) ? `pool-${i % POOL_SIZE}` : String(i);
    return [{ role: 'user', content: `Benchmark request ${id}: summarise the benefits of backpressure in one line.${padding}` }];
  };
}
