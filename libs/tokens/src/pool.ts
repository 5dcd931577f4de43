import { Worker } from 'node:worker_threads';
import type { CountAnswer, CountJob } from './worker.js';

interface Pending {
  resolve: (counts: number[]) => void;
  reject: (err: Error) => void;
}

interface Thread {
  worker: Worker;
  pending: Map<number, Pending>;
}

let thread: Thread | undefined;
let lastId = 0;

/**
 * Counts texts on the worker thread (started on first use, one per process), so a long or
 * hostile text never holds the caller's event loop. Jobs share the worker shortest-first in
 * slices (worker.ts), so a short one is not stuck behind a 1 MB one.
 */
export function countOffThread(texts: string[]): Promise<number[]> {
  const id = ++lastId;
  return new Promise<number[]>((resolve, reject) => {
    const t = (thread ??= spawn());
    t.pending.set(id, { resolve, reject });
    // an idle worker must not keep the process alive; a busy one must, or an awaited count
    // would be dropped at exit
    t.worker.ref();
    t.worker.postMessage({ id, texts } satisfies CountJob);
  });
}

/** Stops the worker (tests; a later count starts a new one). */
export async function stopWorker(): Promise<void> {
  const t = thread;
  thread = undefined;
  if (t) await t.worker.terminate();
}

function spawn(): Thread {
  const entry = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url);
  // Node 20 does not carry the main thread's module hooks (tsx, under which the tests run the
  // services, and vitest's) into a worker: a TypeScript entry is loaded through tsx's API from inside it
  const w = entry.pathname.endsWith('.ts')
    ? new Worker(
        `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => tsx.tsImport(${JSON.stringify(entry.href)}, ${JSON.stringify(import.meta.url)}))`,
        { eval: true, name: 'sluice-tokens' },
      )
    : new Worker(entry, { name: 'sluice-tokens' });
  const t: Thread = { worker: w, pending: new Map() };
  const { pending } = t;
  w.unref();
  w.on('message', (answer: CountAnswer) => {
    const p = pending.get(answer.id);
    if (!p) return;
    pending.delete(answer.id);
    if (pending.size === 0) w.unref();
    if ('error' in answer) p.reject(new Error(`token count failed: ${answer.error}`));
    else p.resolve(answer.counts);
  });
  const fail = (err: Error) => {
    if (thread === t) thread = undefined;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  w.on('error', fail);
  w.on('exit', (code) => fail(new Error(`token counting worker exited with code ${code}`)));
  return t;
}
