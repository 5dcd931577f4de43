// The semantic index's cost per replica: lookup latency (k=4, 2,000 queries) and memory with 10k
// and 100k entries, in one partition (one tenant, one conversation context: the worst case, an
// HNSW graph) and spread over 100 partitions (each scanned exactly); the time to fill each; where
// an exact scan stops being faster than the graph (the crossover `SemanticIndex` uses); and the
// rebuild of a restarted replica from a real JetStream KV bucket of 10k entries.
//
// Texts are varied generated sentences embedded by the simulator (`/v1/embeddings`, 256-d, in
// batches of 512 over HTTP): a test stand-in for a model, whose vectors are hashed word and n-gram
// features. Queries are half paraphrases of stored texts, half fresh sentences.
//
//   node --expose-gc --conditions=sluice-src --import tsx scripts/bench-semantic.ts
//
// Prints figures only; with --expose-gc the memory deltas are measured after a collection.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seededRandom, startSim } from '@sluice/openai-sim';
import { minimalConfig, startTestBus } from '@sluice/bus/testing';
import { encodeEntry, semanticKeyOf, type SemanticEntry } from '../services/cache/src/semantic/entry.js';
import { SemanticIndex } from '../services/cache/src/semantic/index.js';
import { followSemanticBucket } from '../services/cache/src/semantic/sync.js';

const DIMS = 256;
const K = 4;
const QUERIES = 2_000;
const BATCH = 512;
const MODEL = 'text-embedding-3-small';
const CONTEXT = '0'.repeat(64);

/** Deterministic randomness (mulberry32), so two runs embed the same texts. */
const rng = seededRandom;

const OPENERS = [
  'How do I',
  'How can I',
  'What is the best way to',
  'Is it possible to',
  'Can you explain how to',
  'Show me how to',
  'Why can I not',
  'When should I',
];
const VERBS = [
  'reset',
  'configure',
  'export',
  'delete',
  'rename',
  'share',
  'back up',
  'restore',
  'enable',
  'disable',
  'schedule',
  'translate',
  'merge',
  'archive',
];
const OBJECTS = [
  'my password',
  'the billing address',
  'a shared calendar',
  'two-factor authentication',
  'the dark mode setting',
  'an invoice as PDF',
  'the team workspace',
  'a webhook endpoint',
  'the audit log',
  'my profile picture',
  'a recurring meeting',
  'the API key',
  'a customer record',
  'the monthly report',
  'a project template',
  'the notification emails',
  'a database backup',
  'the default language',
  'a support ticket',
  'the mobile app cache',
];
const PLACES = [
  'on Android',
  'on the web app',
  'for the whole team',
  'without losing data',
  'from the admin console',
  'in the desktop client',
  'via the API',
  'after a migration',
  'for a single user',
  'in bulk',
];
const TOPICS = [
  'Kubernetes',
  'Postgres',
  'invoices',
  'the quarterly budget',
  'NATS JetStream',
  'onboarding',
  'rate limits',
  'the roadmap',
  'vector search',
  'GDPR',
];

/** A question from the generator: opener, verb, object, place and a number, about 20 x 14 x 20 x 10 x 1000 forms. */
function sentence(r: () => number): string {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
  const n = Math.floor(r() * 1000);
  return r() < 0.15
    ? `Summarize what changed in ${pick(TOPICS)} between version ${n} and ${n + 1}`
    : `${pick(OPENERS)} ${pick(VERBS)} ${pick(OBJECTS)} ${pick(PLACES)} for account ${n}?`;
}

/** A paraphrase of a generated question: another opener, different case, no question mark. */
function paraphrase(text: string, r: () => number): string {
  const opener = OPENERS.find((o) => text.startsWith(o));
  const other = OPENERS[Math.floor(r() * OPENERS.length)]!;
  const body = opener ? `${other}${text.slice(opener.length)}` : `Please ${text.toLowerCase()}`;
  return body.replace(/\?$/, '').toLowerCase();
}

/** Embeds `texts` with the simulator, `BATCH` per request, into one packed Float32Array (row i at i * DIMS). */
async function embedAll(baseUrl: string, texts: string[]): Promise<Float32Array> {
  const out = new Float32Array(texts.length * DIMS);
  for (let at = 0; at < texts.length; at += BATCH) {
    const input = texts.slice(at, at + BATCH);
    const res = await fetch(`${baseUrl}/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer bench' },
      body: JSON.stringify({ model: MODEL, input, dimensions: DIMS, encoding_format: 'base64' }),
    });
    if (!res.ok) throw new Error(`embeddings: ${res.status} ${await res.text()}`);
    const body = (await res.json()) as { data: Array<{ index: number; embedding: string }> };
    for (const d of body.data) {
      const raw = Buffer.from(d.embedding, 'base64');
      out.set(new Float32Array(raw.buffer, raw.byteOffset, DIMS), (at + d.index) * DIMS);
    }
  }
  return out;
}

const row = (m: Float32Array, i: number) => m.subarray(i * DIMS, (i + 1) * DIMS);
const partitionOf = (p: number) => `bench/${p === 0 ? '' : `ns${p}`}/${MODEL}/${DIMS}/${CONTEXT}`;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

interface Corpus {
  texts: string[];
  vectors: Float32Array;
  /** Query vectors, and for each the stored row it paraphrases (-1 for a fresh sentence). */
  queries: Float32Array;
  sources: number[];
}

function entryOf(c: Corpus, i: number, partitions: number, now: number): SemanticEntry {
  const key = `bench.${i.toString(16).padStart(64, '0')}`;
  return {
    tenant: 'bench',
    partition: partitionOf(i % partitions),
    text: c.texts[i]!,
    vector: row(c.vectors, i),
    cacheKey: key,
    requestId: `r${i}`,
    storedAt: now,
    expiresAt: now + 3_600_000,
  };
}

/** Lookup latencies in ms, sorted; each query searched in the partition its source lives in (fresh ones spread round robin). */
function lookups(index: SemanticIndex, c: Corpus, n: number, partitions: number, now: number): { sorted: number[]; selfFound: number } {
  const times: number[] = [];
  let selfFound = 0;
  let paraphrases = 0;
  for (let q = 0; q < QUERIES; q++) {
    const source = c.sources[q]!;
    const p = source >= 0 ? source % partitions : q % partitions;
    const t = performance.now();
    const found = index.search(partitionOf(p), row(c.queries, q), K, now);
    times.push(performance.now() - t);
    if (source >= 0 && source < n) {
      paraphrases++;
      if (found.some((m) => m.entry.requestId === `r${source}`)) selfFound++;
    }
  }
  return { sorted: times.sort((a, b) => a - b), selfFound: paraphrases ? selfFound / paraphrases : 0 };
}

async function scenario(c: Corpus, n: number, partitions: number, opts: { hnswAbove?: number } = {}): Promise<void> {
  gc();
  const before = process.memoryUsage();
  const now = Date.now();
  const index = new SemanticIndex(opts);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const e = entryOf(c, i, partitions, now);
    index.upsert(semanticKeyOf(e.cacheKey), e);
  }
  const filled = performance.now() - t0;
  await index.whenBuilt();
  const built = performance.now() - t0;
  gc();
  const after = process.memoryUsage();
  const { sorted, selfFound } = lookups(index, c, n, partitions, now);
  const s = index.stats();
  const mode = opts.hnswAbove === Infinity ? 'scan only' : s.graphs > 0 ? `${s.graphs} HNSW graph(s)` : 'scanned';
  const mb = (b: number) => (b / 1_048_576).toFixed(1);
  console.log(
    `${String(n).padStart(6)} entries, ${String(partitions).padStart(3)} partition(s), ${mode}: ` +
      `lookup p50 ${pct(sorted, 50).toFixed(3)} ms, p99 ${pct(sorted, 99).toFixed(3)} ms (k=${K}, ${QUERIES} queries; paraphrase's source in top ${K}: ${(selfFound * 100).toFixed(1)} %); ` +
      `fill ${filled.toFixed(0)} ms, fill + graph build ${built.toFixed(0)} ms; ` +
      `memory: rss +${mb(after.rss - before.rss)} MB, heapUsed +${mb(after.heapUsed - before.heapUsed)} MB, ` +
      `arrayBuffers +${mb(after.arrayBuffers - before.arrayBuffers)} MB, bytes() ${mb(index.bytes())} MB`,
  );
}

/** Lookup p50 of the exact scan and of the graph at each size, one partition: where the crossover is. */
async function crossover(c: Corpus): Promise<void> {
  console.log('\ncrossover (one partition, lookup p50 / p99 ms, k=4):');
  for (const n of [500, 1_000, 2_000, 4_000, 8_000, 16_000]) {
    const now = Date.now();
    const line: string[] = [];
    for (const [name, hnswAbove] of [
      ['scan', Infinity],
      ['hnsw', 0],
    ] as const) {
      const index = new SemanticIndex({ hnswAbove });
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        const e = entryOf(c, i, 1, now);
        index.upsert(e.cacheKey, e);
      }
      await index.whenBuilt();
      const build = performance.now() - t0;
      const { sorted, selfFound } = lookups(index, c, n, 1, now);
      line.push(
        `${name} ${pct(sorted, 50).toFixed(3)} / ${pct(sorted, 99).toFixed(3)} (source in top ${K} ${(selfFound * 100).toFixed(1)} %, build ${build.toFixed(0)} ms)`,
      );
    }
    console.log(`  ${String(n).padStart(6)}: ${line.join('; ')}`);
  }
}

/** A restarted replica: 10k entries in a real bucket, then the time until the follower is ready and until its graph is built. */
async function rebuild(c: Corpus, n: number): Promise<void> {
  const env = await startTestBus(minimalConfig([{ id: 'bench' }]), { name: 'bench-semantic' });
  try {
    const kv = env.buckets.semantic;
    const now = Date.now();
    const t0 = performance.now();
    for (let at = 0; at < n; at += 500) {
      const puts: Array<Promise<unknown>> = [];
      for (let i = at; i < Math.min(n, at + 500); i++) {
        const e = entryOf(c, i, 1, now);
        puts.push(kv.put(semanticKeyOf(e.cacheKey), encodeEntry(e)));
      }
      await Promise.all(puts);
    }
    const put = performance.now() - t0;
    const index = new SemanticIndex();
    const t1 = performance.now();
    const follow = await followSemanticBucket(kv, index, env.log);
    await follow.ready;
    const ready = performance.now() - t1;
    await index.whenBuilt();
    const built = performance.now() - t1;
    console.log(
      `\nrebuild from a KV bucket (${n} entries, one partition): put ${put.toFixed(0)} ms; follower ready after ${ready.toFixed(0)} ms ` +
        `(${index.size()} entries, searchable by exact scan), graph built after ${built.toFixed(0)} ms`,
    );
    await follow.stop();
  } finally {
    await env.stop();
  }
}

/** The texts: the first `n` generated ones, and the 2,000 queries (paraphrases of the first 10k, and fresh sentences) with their sources. */
function textsOf(n: number): { texts: string[]; queryTexts: string[]; sources: number[] } {
  const r = rng(12);
  const texts = Array.from({ length: Math.max(n, 10_000) }, () => sentence(r));
  const rq = rng(34);
  const sources = Array.from({ length: QUERIES }, (_, q) => (q % 2 === 0 ? Math.floor(rq() * 10_000) : -1));
  const queryTexts = sources.map((s) => (s >= 0 ? paraphrase(texts[s]!, rq) : sentence(rq)));
  return { texts: texts.slice(0, n), queryTexts, sources };
}

/** Embeds the corpus of `n` entries and writes its vectors (entries, then queries) to `file`, for the scenario processes. */
async function writeCorpus(baseUrl: string, n: number, file: string): Promise<Corpus> {
  const { texts, queryTexts, sources } = textsOf(n);
  const corpus = { texts, vectors: await embedAll(baseUrl, texts), queries: await embedAll(baseUrl, queryTexts), sources };
  writeFileSync(file, Buffer.concat([Buffer.from(corpus.vectors.buffer), Buffer.from(corpus.queries.buffer)]));
  return corpus;
}

/** The corpus as `writeCorpus` left it: one read, so the process holds no garbage from embedding when its memory is measured. */
function readCorpus(n: number, file: string): Corpus {
  const { texts, sources } = textsOf(n);
  const raw = readFileSync(file);
  const all = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const total = all.length / DIMS - QUERIES;
  return { texts, vectors: all.subarray(0, n * DIMS), queries: all.subarray(total * DIMS), sources };
}

/** Runs one memory scenario in a fresh process (same flags), so its memory is its own and not what an earlier one left. */
async function inChild(file: string, n: number, partitions: number, hnswAbove?: number): Promise<void> {
  const args = [...process.execArgv, process.argv[1]!, 'scenario', file, String(n), String(partitions), String(hnswAbove ?? '')];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`scenario ${n}/${partitions} exited with ${code}`);
}

if (process.argv[2] === 'scenario') {
  const [file, ...rest] = process.argv.slice(3);
  const [n, partitions, above] = rest.map((a) => (a === '' ? undefined : Number(a)));
  await scenario(readCorpus(n!, file!), n!, partitions!, above === undefined ? {} : { hnswAbove: above });
} else {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-semantic-'));
  const file = join(dir, 'corpus.f32');
  const sim = await startSim({ models: [MODEL] });
  try {
    const t0 = performance.now();
    const corpus = await writeCorpus(sim.url, 100_000, file);
    console.log(
      `embedded ${100_000 + QUERIES} generated texts (${new Set(corpus.texts).size} distinct) with the simulator in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    await crossover(corpus);
    await rebuild(corpus, 10_000);
    console.log(`\nper replica (each in a fresh process; memory after a GC${'gc' in globalThis ? '' : ': run with --expose-gc for it'}):`);
    await inChild(file, 10_000, 1);
    await inChild(file, 10_000, 1, Infinity);
    await inChild(file, 10_000, 100);
    await inChild(file, 100_000, 1);
    await inChild(file, 100_000, 1, Infinity);
    await inChild(file, 100_000, 100);
  } finally {
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
