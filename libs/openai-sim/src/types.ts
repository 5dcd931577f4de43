/** Options accepted by {@link startSim}. Every field is optional. */
export interface SimOptions {
  /** TCP port; 0 picks a free one. Default 0. */
  port?: number;
  /** Interface to bind. Default 127.0.0.1. */
  host?: string;
  /** Delay before the first byte of every chat, Responses and embedding answer. Default 0. */
  latencyMs?: number;
  /** Delay between streamed chunks. Default 0. */
  tokenLatencyMs?: number;
  /** Request budget per minute (token bucket); unset = unlimited. */
  requestsPerMinute?: number;
  /** Token budget per minute (token bucket); unset = unlimited. */
  tokensPerMinute?: number;
  /**
   * Seconds of the per-minute limits the buckets hold, in (0, 60]: a burst after a quiet spell
   * is at most this much of a minute's limit (OpenAI enforces limits over windows shorter than a
   * minute). Default 60, the whole minute.
   */
  burstSeconds?: number;
  /** Fraction (0..1) of chat and Responses requests answered with a 500. */
  errorRate?: number;
  /** Fraction (0..1) of chat and Responses requests that are accepted and never answered. */
  timeoutRate?: number;
  /** Model ids served by /v1/models and accepted by the API. */
  models?: string[];
  /** Context window (tokens) of every model not in `contextWindows`. Default: unlimited (OpenAI's gpt-4o family: 128,000). */
  contextWindow?: number;
  /** Context window per model id, overriding `contextWindow`. */
  contextWindows?: Record<string, number>;
  /** Milliseconds a Batch API batch takes to run all its lines, which finish evenly spread over it. Default 0 (as fast as timers go). */
  batchDelayMs?: number;
  /** Milliseconds a batch may run before it expires (OpenAI's `24h` completion window). Default 86,400,000. */
  batchWindowMs?: number;
}

/** Runtime-adjustable behaviour; `null` limits mean unlimited. */
export interface Faults {
  latencyMs: number;
  tokenLatencyMs: number;
  errorRate: number;
  timeoutRate: number;
  requestsPerMinute: number | null;
  tokensPerMinute: number | null;
  burstSeconds: number;
  /** Read when a batch is created: later changes do not touch running batches. */
  batchDelayMs: number;
  /** Read when a batch is created, like `batchDelayMs`. */
  batchWindowMs: number;
}

/**
 * Counters since start or the last reset.
 * Token fields count only answers actually served in full (see README).
 */
export interface SimStats {
  /** Chat + embedding requests received, whatever their outcome. */
  requests: number;
  /** Chat completions and Responses served in full (200, or a stream written through its last event). */
  completions: number;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  /** Embedding requests served. */
  embeddings: number;
  embeddingTokens: number;
  /** Answers with a 4xx (other than 429) or 5xx status. */
  errors: number;
  /** Answers with a 429. */
  throttled: number;
  /** Requests deliberately left hanging. */
  timeouts: number;
  /** Repeats answered from a stored answer under their Idempotency-Key (not counted as completions). */
  replays: number;
  /** How many of `completions` were Responses API answers (POST /v1/responses). */
  responses: number;
  /** Streamed answers cut short because the client closed the connection (during the first-byte wait or mid-stream). */
  aborted: number;
  /** Completion tokens those cut streams never sent (not counted in `completionTokens`). */
  abortedTokens: number;
  /**
   * Batch API lines executed (answered or refused), each once. Their answers are also counted in
   * `completions`, `responses`, the token fields, `embeddings` or `errors` like direct calls, but not in `requests`.
   * Always set by startSim; optional only so that stand-in Sims written before the Batch API still type-check.
   */
  batchLines?: number;
}

/** A running simulator. */
export interface Sim {
  /** Base URL for the openai SDK, e.g. `http://127.0.0.1:12345/v1`. */
  url: string;
  port: number;
  /** A snapshot of the counters. */
  stats(): SimStats;
  /** Changes behaviour at run time; `null` clears a rate limit. */
  setFaults(f: Partial<Faults>): void;
  /** Zeroes the counters, refills the rate-limit buckets, forgets idempotency keys, files and batches (stopping running ones); faults are kept. */
  reset(): void;
  /** Stops listening and drops every open connection, hanging ones included. */
  close(): Promise<void>;
}
