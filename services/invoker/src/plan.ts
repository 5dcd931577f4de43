import { isDeploymentFault, type Candidate, type ErrorCode, type SluiceConfig, type UpstreamError } from '@sluice/contracts';
import { admit, type Circuit } from './circuit.js';
import { backoffMs, type Failure } from './retry.js';

export type InvokerSettings = SluiceConfig['invoker'];

/** What to do after a failed attempt. */
export type NextStep =
  | { kind: 'retry'; delayMs: number; reason: string }
  | { kind: 'next-candidate'; reason: string }
  /** End the request; `upstream` when the upstream's own refusal is what the client is told. */
  | { kind: 'fail'; code: ErrorCode; message: string; reason: string; upstream?: UpstreamError };

export interface FailureContext {
  /** 1-based attempt number on the current candidate. */
  attemptOnCandidate: number;
  /** Whether a later candidate exists to fall back to. */
  hasFallback: boolean;
  now: number;
  deadline: number;
  settings: InvokerSettings;
  random: () => number;
}

/** Whether a failure says the deployment is unhealthy (counts towards its circuit). */
export function countsAgainstDeployment(f: Failure): boolean {
  if (f.status === undefined) return true;
  return f.retryable || isDeploymentFault(f.status);
}

/**
 * Decides what follows a failed attempt. Retries stay on the same candidate with jittered
 * exponential backoff, or at least the upstream's Retry-After; when that wait would pass the
 * deadline, or a fallback exists and the upstream asks for more than `maxBackoffMs`, we move
 * on rather than sleep. The upstream's refusal of the request (a 4xx other than 408, 409, 429
 * and our own key's 401/403) ends it at once with the upstream's error: another deployment
 * would refuse the same body the same way (`context_length_exceeded`, a bad `tools` schema).
 */
export function afterFailure(f: Failure, c: FailureContext): NextStep {
  if (f.partial) {
    return {
      kind: 'fail',
      code: 'upstream_failed',
      message: `The upstream failed mid-answer: ${f.message}`,
      reason: 'failed after part of the answer was streamed; cannot retry',
    };
  }
  if (f.status !== undefined && !f.retryable) {
    if (isDeploymentFault(f.status)) return { kind: 'next-candidate', reason: `upstream refused our key with ${f.status}` };
    const code = f.upstream?.code ? ` (${f.upstream.code})` : '';
    return {
      kind: 'fail',
      code: 'upstream_rejected',
      message: f.message,
      reason: `upstream rejected the request with ${f.status}${code}; passed to the client`,
      ...(f.upstream !== undefined ? { upstream: f.upstream } : {}),
    };
  }
  if (!f.retryable) return { kind: 'next-candidate', reason: `not retryable: ${f.message}` };
  if (c.attemptOnCandidate >= c.settings.maxAttemptsPerDeployment) {
    return { kind: 'next-candidate', reason: `${c.attemptOnCandidate} attempts failed` };
  }
  const jittered = backoffMs(c.attemptOnCandidate, c.settings, c.random);
  const delayMs = f.retryAfterMs !== undefined ? Math.max(f.retryAfterMs, 0) : jittered;
  if (c.now + delayMs >= c.deadline) {
    return { kind: 'next-candidate', reason: `waiting ${delayMs} ms would pass the deadline` };
  }
  if (f.retryAfterMs !== undefined && f.retryAfterMs > c.settings.maxBackoffMs && c.hasFallback) {
    return { kind: 'next-candidate', reason: `upstream asked to wait ${f.retryAfterMs} ms; falling back instead` };
  }
  const why = f.retryAfterMs !== undefined ? `upstream asked to wait ${f.retryAfterMs} ms` : `backoff ${delayMs} ms`;
  return { kind: 'retry', delayMs, reason: why };
}

/**
 * The code a request that ran out of candidates ends with: the deadline's, else the upstream's
 * rate limit when that is what stopped the last attempt (the client may retry later), else ours.
 */
export function exhaustedCode(now: number, deadline: number, last?: Failure): ErrorCode {
  if (now >= deadline) return 'deadline_exceeded';
  return last?.status === 429 ? 'rate_limit_exceeded' : 'upstream_failed';
}

export interface Pick {
  /** Index of the candidate to call, or -1 when none is left. */
  index: number;
  /** Its circuit after admission (the half-open trial taken); store it. */
  circuit?: Circuit;
  /** Candidates passed over on the way, with why, for the timeline. */
  skipped: string[];
}

/**
 * The first candidate from `from` on that is configured and whose circuit lets a call through.
 * Skipping an open circuit is the point of having one: the request goes straight to the fallback.
 * The candidates come in the order balance.ts gave this request (a model's deployments by weight
 * and latency, open or paused ones last); this only passes over what cannot be called now.
 */
export function pickCandidate(
  candidates: readonly Candidate[],
  from: number,
  circuitOf: (deployment: string) => Circuit,
  deployments: SluiceConfig['deployments'],
  now: number,
  settings: InvokerSettings,
): Pick {
  const skipped: string[] = [];
  for (let i = from; i < candidates.length; i++) {
    const c = candidates[i]!;
    if (!deployments[c.deployment]) {
      skipped.push(`skipped ${describe(c)}: deployment not configured`);
      continue;
    }
    const a = admit(circuitOf(c.deployment), now, settings);
    if (a.allow) return { index: i, circuit: a.circuit, skipped };
    skipped.push(`skipped ${describe(c)}: ${a.reason}`);
  }
  return { index: -1, skipped };
}

/** Describes a candidate for the timeline. */
export function describe(c: Candidate): string {
  return `${c.model}@${c.deployment}`;
}
