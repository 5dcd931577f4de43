import type { ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { applyFaultPatch, decideFault, type FaultOutcome, faultsFromOptions, seededRandom } from './faults.js';
import { answerBatchLine } from './batch-line.js';
import { BatchStore } from './batches.js';
import { FileStore } from './files.js';
import { IdempotencyStore } from './idempotency.js';
import { RateLimiter } from './limits.js';
import type { Served } from './api.js';
import type { Turn } from './responses.js';
import type { Faults, SimOptions, SimStats } from './types.js';

/** Models served when none are configured. */
export const DEFAULT_MODELS: readonly string[] = ['gpt-4o-mini', 'gpt-4o', 'gpt-4.1-mini', 'text-embedding-3-small'];

/** Responses kept for `previous_response_id`; beyond this the oldest is forgotten (OpenAI keeps them 30 days). */
const MAX_STORED_RESPONSES = 10_000;

// A fixed seed: the n-th faultable request meets the same fate on every run.
const FAULT_SEED = 0x5eed;

/** Zeroed counters. */
function emptyStats(): Required<SimStats> {
  return {
    requests: 0,
    completions: 0,
    promptTokens: 0,
    completionTokens: 0,
    totalTokens: 0,
    embeddings: 0,
    embeddingTokens: 0,
    errors: 0,
    throttled: 0,
    timeouts: 0,
    replays: 0,
    responses: 0,
    aborted: 0,
    abortedTokens: 0,
    batchLines: 0,
  };
}

/** The mutable state one simulator instance shares between its routes. */
export class SimState {
  readonly models: readonly string[];
  readonly modelSet: ReadonlySet<string>;
  /** Responses deliberately left hanging, destroyed on close. */
  readonly held = new Set<ServerResponse>();
  /** Answers served in full, by Idempotency-Key. */
  readonly idempotency = new IdempotencyStore<Served>();
  /** Files uploaded through the Files API and written by batches. */
  readonly files = new FileStore();
  /** Batch API batches, running on timers. */
  readonly batches = new BatchStore(this.files, (endpoint, body) => answerBatchLine(this, endpoint, body));
  stats: Required<SimStats> = emptyStats();
  private readonly storedResponses = new Map<string, readonly Turn[]>();
  private current: Faults;
  private readonly limiter: RateLimiter;
  private readonly random = seededRandom(FAULT_SEED);
  private readonly defaultWindow: number;
  private readonly windows: ReadonlyMap<string, number>;

  constructor(opts: SimOptions) {
    this.models = opts.models && opts.models.length > 0 ? [...opts.models] : DEFAULT_MODELS;
    this.modelSet = new Set(this.models);
    this.defaultWindow = opts.contextWindow === undefined ? Number.POSITIVE_INFINITY : checkWindow('contextWindow', opts.contextWindow);
    this.windows = new Map(Object.entries(opts.contextWindows ?? {}).map(([m, w]) => [m, checkWindow(`contextWindows.${m}`, w)]));
    this.current = faultsFromOptions(opts);
    this.limiter = new RateLimiter(this.current.requestsPerMinute, this.current.tokensPerMinute, now(), this.current.burstSeconds);
  }

  get faults(): Readonly<Faults> {
    return this.current;
  }

  /** Applies a partial update; returns an error message when it is invalid. */
  patchFaults(patch: unknown): Faults | string {
    const next = applyFaultPatch(this.current, patch);
    if (typeof next === 'string') return next;
    this.current = next;
    this.limiter.configure(next.requestsPerMinute, next.tokensPerMinute, now(), next.burstSeconds);
    return { ...next };
  }

  /** Zeroes the counters, refills the buckets, stops every batch and forgets files and batches. */
  reset(): void {
    this.batches.clear();
    this.files.clear();
    this.stats = emptyStats();
    this.idempotency.clear();
    this.storedResponses.clear();
    this.limiter.fill(now());
  }

  /** Keeps a served response's conversation for a later `previous_response_id`. */
  rememberResponse(id: string, conversation: readonly Turn[]): void {
    if (this.storedResponses.size >= MAX_STORED_RESPONSES) {
      const oldest = this.storedResponses.keys().next();
      if (oldest.done !== true) this.storedResponses.delete(oldest.value);
    }
    this.storedResponses.set(id, conversation);
  }

  /** The conversation of a stored response, or undefined when it was never stored or is forgotten. */
  recallResponse(id: string): readonly Turn[] | undefined {
    return this.storedResponses.get(id);
  }

  /** Admits a request costing `tokens` against the rate limits. */
  admit(tokens: number): ReturnType<RateLimiter['admit']> {
    return this.limiter.admit(tokens, now());
  }

  /** The x-ratelimit-* headers as they stand. */
  limitHeaders(): Record<string, string> {
    return this.limiter.headers(now());
  }

  /** The context window of a model, in tokens (Infinity when not configured). */
  contextWindow(model: string): number {
    return this.windows.get(model) ?? this.defaultWindow;
  }

  /** Draws the fault for one chat request; no draw is spent when faults are off. */
  nextFault(): FaultOutcome {
    const f = this.current;
    if (f.errorRate === 0 && f.timeoutRate === 0) return 'none';
    return decideFault(this.random(), f);
  }
}

function checkWindow(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be an integer >= 1, got ${String(v)}`);
  return v;
}

/** Monotonic clock for the buckets, immune to wall-clock jumps. */
function now(): number {
  return performance.now();
}
