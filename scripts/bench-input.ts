/**
 * `npm run bench:input`: what the worst request shapes cost each step that reads client text,
 * in milliseconds per megabyte of request body, against the bounds in docs/input-bounds.md.
 * Exits 1 when a bound is exceeded. Not part of `npm test` (it measures time).
 *
 * Each shape is one request body of about the body limit (1 MiB). Steps:
 *   ingress   — parseJsonBody + checkBody (maxMessages raised so 10,000 messages get through)
 *   facts     — bodyFacts (@sluice/facts): every text counted (@sluice/tokens, as the worker thread
 *               does for long ones) and the complexity keywords (regexes, per message)
 *   stall     — the longest ingress's event loop was held while it computed the facts
 *               (bodyFactsAsync; ms, not per MB)
 *   cache key — cacheKey (canonical JSON of the body, SHA-256)
 *   event hop — JSON.stringify of chat.requested and parseEvent (the body's one hop: the limiter
 *               reads it, and the invoker once more to send it upstream)
 * BENCH_INPUT_RUNS (default 3) runs per step; the median counts.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { makeEvent, parseEvent, ServiceName } from '@sluice/contracts';
import { bodyFacts, bodyFactsAsync, cacheKey } from '@sluice/facts';
import { countMessagesAsync, stopTokenWorker } from '../libs/tokens/src/mod.js';
import { seeded, TEXT_SHAPES } from '../libs/tokens/src/shapes.js';
import { checkBody, parseJsonBody } from '../services/ingress/src/validate.js';

const MB = 1_048_576;
const RUNS = Number(process.env.BENCH_INPUT_RUNS ?? 3);

/** Bounds, ms per MB of body (stall: ms per request). Keep in step with docs/input-bounds.md. */
const BOUNDS = { ingress: 60, facts: 860, stall: 20, 'cache key': 60, 'event hop': 60 } as const;
/** A normal request's estimate, p99 in ms, while the worst shape is counted back to back. */
const NORMAL_UNDER_LOAD_P99 = 5;
type Step = keyof typeof BOUNDS;

const chat = (content: string, extra = '') => `{"model":"auto","messages":[{"role":"user","content":${JSON.stringify(content)}}]${extra}}`;

/** A body of at most 1 MiB holding one message of the shape (JSON escapes take more room for some). */
function fill(text: (bytes: number) => string): string {
  const body = chat(text(MB - 64));
  const size = Buffer.byteLength(body);
  return size <= MB ? body : chat(text(Math.floor(((MB - 64) * MB) / size) - 64));
}

/** The router's hard phrases with long whitespace runs inside ("step", 1,000 spaces, "by", …). */
function hardPhraseRuns(bytes: number): string {
  const rnd = seeded(3);
  const parts: string[] = [];
  for (let length = 0; length < bytes;) {
    const run = () => ' \n\t'[Math.floor(rnd() * 3)]!.repeat(1 + Math.floor(rnd() * 2_000));
    const part = `step${run()}by${run()}step explain${run()}why reason${run()}abou `;
    parts.push(part);
    length += part.length;
  }
  return parts.join('').slice(0, bytes);
}

const SHAPES: Record<string, string> = {
  ...Object.fromEntries(Object.entries(TEXT_SHAPES).map(([name, text]) => [name, fill(text)])),
  'hard phrases, runs': fill(hardPhraseRuns),
  'deep unknown field': chat('deep', `,"x":${'['.repeat(MB / 2 - 64)}${']'.repeat(MB / 2 - 64)}`),
  'deep metadata': chat('deep', `,"metadata":{"a":${'['.repeat(MB / 2 - 64)}${']'.repeat(MB / 2 - 64)}}`),
  '10,000 tiny messages': JSON.stringify({ model: 'auto', messages: Array.from({ length: 10_000 }, (_, i) => ({ role: 'user', content: `m${i}` })) }),
};

type Body = Record<string, unknown>;

const STEPS: Record<Step, (text: string, body: Body | undefined) => unknown> = {
  ingress: (text) => {
    try {
      return checkBody('chat.completions', parseJsonBody(text), {}, { maxMessages: 1_000_000 });
    } catch (e) {
      return e; // a refusal is an outcome too: its cost is what is measured
    }
  },
  facts: (_text, body) => body && bodyFacts('chat.completions', body),
  stall: () => undefined, // measured apart, below
  'cache key': (_text, body) => body && cacheKey('bench', 'chat.completions', body),
  'event hop': (_text, body) => {
    if (!body) return undefined;
    const fields = { requestId: 'r', tenant: 'bench', service: ServiceName.Ingress, at: 0, reason: 'bench' };
    const request = {
      endpoint: 'chat.completions' as const,
      model: 'auto',
      priority: 'standard' as const,
      stream: false,
      cache: 'default' as const,
      promptTokens: 0,
      choices: 1,
      complexity: { score: 0, promptTokens: 0, turns: 0, code: false, keywords: [] },
    };
    const event = makeEvent('chat.requested', fields, { ctx: { request, frontDoor: 'http', receivedAt: 0, deadline: 1 }, body });
    return parseEvent(JSON.stringify(event));
  },
};

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function time(fn: () => unknown): number {
  const start = performance.now();
  fn();
  return performance.now() - start;
}

/** The longest the event loop was held while ingress computed the facts, in ms. */
async function stall(body: Body): Promise<number> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  // a fresh copy each time, so nothing is remembered from an earlier run
  const fresh = structuredClone(body);
  h.enable();
  let facts: Promise<unknown> | undefined;
  const heldFor = time(() => (facts = bodyFactsAsync('chat.completions', fresh)));
  await facts;
  // let the histogram see a turn of the loop after the answer
  await new Promise((r) => setTimeout(r, 5));
  h.disable();
  return Math.max(heldFor, h.max / 1e6);
}

/** Latencies of `count` fact computations of a normal request, one at a time, each from a timer as requests arrive. */
async function normalLatencies(body: Body, count: number): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const asked = performance.now();
    await new Promise((r) => setImmediate(r));
    await bodyFactsAsync('chat.completions', structuredClone(body));
    latencies.push(performance.now() - asked);
  }
  return latencies;
}

async function main(): Promise<void> {
  // warm-up: load the tokenizer tables here and on the worker, JIT the hot paths
  await countMessagesAsync([{ content: TEXT_SHAPES.prose!(200_000) }]);
  for (const fn of Object.values(STEPS)) fn(SHAPES.prose!, parseJsonBody(SHAPES.prose!) as Body);

  const steps = Object.keys(BOUNDS) as Step[];
  console.log(`ms per MB of body, median of ${RUNS} (stall: ms per request); bounds in the last row`);
  console.log(['shape'.padEnd(22), 'MB'.padStart(5), ...steps.map((s) => s.padStart(10))].join(' '));
  const over: string[] = [];
  for (const [shape, body] of Object.entries(SHAPES)) {
    const mb = Buffer.byteLength(body) / MB;
    const outcome = STEPS.ingress(body, undefined);
    const request = outcome instanceof Error ? undefined : (outcome as ReturnType<typeof checkBody>).body;
    const cells: string[] = [];
    for (const step of steps) {
      let value: number | undefined;
      if (step === 'stall') {
        if (request) {
          const runs: number[] = [];
          for (let i = 0; i < RUNS; i++) runs.push(await stall(request));
          value = median(runs);
        }
      } else if (step === 'ingress' || request) {
        const runs: number[] = [];
        for (let i = 0; i < RUNS; i++) runs.push(time(() => STEPS[step](body, request)) / mb);
        value = median(runs);
      }
      if (value !== undefined && value > BOUNDS[step]) over.push(`${shape}: ${step} ${value.toFixed(1)} > ${BOUNDS[step]}`);
      cells.push((value === undefined ? '—' : value.toFixed(value < 10 ? 1 : 0)).padStart(10));
    }
    console.log([shape.padEnd(22), mb.toFixed(2).padStart(5), ...cells].join(' '));
  }
  console.log(['bound'.padEnd(22), ''.padStart(5), ...steps.map((s) => String(BOUNDS[s]).padStart(10))].join(' '));
  console.log('(—: the step never sees this shape: ingress refused it)');

  // another tenant's normal request while the slowest shape is counted back to back
  const normal = parseJsonBody(chat(TEXT_SHAPES.prose!(1_000))) as Body;
  const idle = await normalLatencies(normal, 1_000);
  const worst = parseJsonBody(SHAPES['space runs']!) as Body;
  let hostile = true;
  const flood = (async () => {
    while (hostile) await bodyFactsAsync('chat.completions', structuredClone(worst));
  })();
  const loaded = await normalLatencies(normal, 1_000);
  hostile = false;
  await flood;
  const p = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.floor(q * (xs.length - 1))]!;
  console.log(
    `normal request (1 KB prompt) facts, ms: idle p50 ${p(idle, 0.5).toFixed(2)} p99 ${p(idle, 0.99).toFixed(2)}; while 1 MiB of "space runs" is counted back to back p50 ${p(loaded, 0.5).toFixed(2)} p99 ${p(loaded, 0.99).toFixed(2)} (bound ${NORMAL_UNDER_LOAD_P99})`,
  );
  if (p(loaded, 0.99) > NORMAL_UNDER_LOAD_P99) over.push(`normal request p99 under load ${p(loaded, 0.99).toFixed(2)} > ${NORMAL_UNDER_LOAD_P99}`);
  await stopTokenWorker();
  if (over.length > 0) {
    console.error(`bounds exceeded:\n  ${over.join('\n  ')}`);
    process.exit(1);
  }
}

await main();
