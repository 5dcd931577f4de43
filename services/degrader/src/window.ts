/** One upstream attempt as the degrader remembers it. */
export interface Sample {
  /** Epoch ms of the attempt (the invoker's event time, so a replayed backlog ages out correctly). */
  at: number;
  ok: boolean;
  latencyMs: number;
}

export interface WindowStats {
  samples: number;
  failures: number;
  /** failures / samples; 0 when there are no samples. */
  rawRatio: number;
  /** The ratio the levels are judged by: 0 below `minSamples`, so a handful of attempts cannot degrade service. */
  ratio: number;
  p95LatencyMs: number;
}

/** Failure ratio and latency over the samples in `[from, to]`. */
export function windowStats(samples: readonly Sample[], from: number, to: number, minSamples: number): WindowStats {
  const inside = samples.filter((s) => s.at >= from && s.at <= to);
  const failures = inside.filter((s) => !s.ok).length;
  const rawRatio = inside.length ? failures / inside.length : 0;
  return { samples: inside.length, failures, rawRatio, ratio: inside.length >= minSamples ? rawRatio : 0, p95LatencyMs: p95(inside.map((s) => s.latencyMs)) };
}

/** Nearest-rank 95th percentile; 0 for no values. */
export function p95(values: number[]): number {
  if (!values.length) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)]!;
}
