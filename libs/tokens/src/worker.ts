import { parentPort } from 'node:worker_threads';
import { countSpan } from './count.js';

/** A request to count texts, from the pool. */
export interface CountJob {
  id: number;
  texts: string[];
}

/** The counts of a job's texts, in order, or why they could not be counted. */
export type CountAnswer = { id: number; counts: number[] } | { id: number; error: string };

/**
 * The most text counted between two looks at the queue. Hostile text costs up to ~0.5 µs a
 * char (docs/input-bounds.md), so a short job that arrives behind a 1 MB one waits at most
 * ~8 ms for its turn, not the whole of the long one.
 */
const SLICE_CHARS = 16_384;

interface Running {
  job: CountJob;
  counts: number[];
  text: number;
  at: number;
  remaining: number;
}

const port = parentPort;
if (!port) throw new Error('@sluice/tokens worker.ts runs only as a worker thread');

const queue: Running[] = [];
let scheduled = false;

port.on('message', (job: CountJob) => {
  queue.push({ job, counts: job.texts.map(() => 0), text: 0, at: 0, remaining: job.texts.reduce((n, t) => n + t.length, 0) });
  schedule();
});

function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  // setImmediate, not a loop: between slices the worker reads its port, so a job that just
  // arrived can go first
  setImmediate(step);
}

/** One slice of the job with the least text left (shortest remaining first). */
function step(): void {
  scheduled = false;
  if (queue.length === 0) return;
  let next = 0;
  for (let i = 1; i < queue.length; i++) if (queue[i]!.remaining < queue[next]!.remaining) next = i;
  const run = queue[next]!;
  try {
    let budget = SLICE_CHARS;
    while (budget > 0 && run.text < run.job.texts.length) {
      const text = run.job.texts[run.text]!;
      const span = countSpan(text, run.at, budget);
      run.counts[run.text]! += span.tokens;
      budget -= span.next - run.at;
      run.remaining -= span.next - run.at;
      run.at = span.next;
      if (run.at >= text.length) {
        run.text++;
        run.at = 0;
      }
    }
    if (run.text >= run.job.texts.length) {
      queue.splice(next, 1);
      port!.postMessage({ id: run.job.id, counts: run.counts } satisfies CountAnswer);
    }
  } catch (err) {
    queue.splice(next, 1);
    port!.postMessage({ id: run.job.id, error: (err as Error).message } satisfies CountAnswer);
  }
  schedule();
}
