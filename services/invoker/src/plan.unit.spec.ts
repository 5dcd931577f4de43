import { describe, expect, it } from 'vitest';
import type { Deployment } from '@sluice/contracts';
import { closedCircuit, type Circuit } from './circuit.js';
import { afterFailure, countsAgainstDeployment, exhaustedCode, pickCandidate, type FailureContext, type InvokerSettings } from './plan.js';
import type { Failure } from './retry.js';

const settings: InvokerSettings = {
  maxAttemptsPerDeployment: 3,
  baseBackoffMs: 100,
  maxBackoffMs: 2000,
  circuitFailureThreshold: 2,
  circuitOpenMs: 1000,
  concurrency: 8,
};
const ctx = (over: Partial<FailureContext> = {}): FailureContext => ({
  attemptOnCandidate: 1,
  hasFallback: true,
  now: 0,
  deadline: 60_000,
  settings,
  random: () => 1,
  ...over,
});
const server: Failure = { kind: 'status', status: 500, message: 'boom', retryable: true };

describe('afterFailure', () => {
  it('retries a server error on the same candidate with exponential backoff', () => {
    expect(afterFailure(server, ctx())).toMatchObject({ kind: 'retry', delayMs: 100 });
    expect(afterFailure(server, ctx({ attemptOnCandidate: 2 }))).toMatchObject({ kind: 'retry', delayMs: 200 });
  });
  it('moves on after maxAttemptsPerDeployment', () => {
    expect(afterFailure(server, ctx({ attemptOnCandidate: 3 }))).toMatchObject({ kind: 'next-candidate' });
  });
  it('waits at least what Retry-After asks, even above the backoff', () => {
    const f: Failure = { kind: 'status', status: 429, message: 'slow down', retryable: true, retryAfterMs: 1500 };
    expect(afterFailure(f, ctx())).toMatchObject({ kind: 'retry', delayMs: 1500 });
  });
  it('falls back instead of sleeping past the deadline', () => {
    const f: Failure = { kind: 'status', status: 429, message: 'slow down', retryable: true, retryAfterMs: 1500 };
    expect(afterFailure(f, ctx({ now: 59_000 }))).toMatchObject({ kind: 'next-candidate' });
    expect(afterFailure(server, ctx({ now: 59_950 }))).toMatchObject({ kind: 'next-candidate' });
  });
  it('falls back rather than honour a Retry-After above maxBackoffMs, but waits when there is no fallback', () => {
    const f: Failure = { kind: 'status', status: 429, message: 'slow down', retryable: true, retryAfterMs: 20_000 };
    expect(afterFailure(f, ctx())).toMatchObject({ kind: 'next-candidate' });
    expect(afterFailure(f, ctx({ hasFallback: false }))).toMatchObject({ kind: 'retry', delayMs: 20_000 });
  });
  it("fails at once on a request the upstream rejects, keeping the upstream's error", () => {
    const upstream = { status: 400, type: 'invalid_request_error', code: null, param: 'temperature', message: "Invalid 'temperature'" };
    const bad: Failure = { kind: 'status', status: 400, message: "Invalid 'temperature'", retryable: false, upstream };
    expect(afterFailure(bad, ctx())).toMatchObject({ kind: 'fail', code: 'upstream_rejected', message: "Invalid 'temperature'", upstream });
    for (const status of [404, 413, 422]) expect(afterFailure({ ...bad, status }, ctx())).toMatchObject({ kind: 'fail', code: 'upstream_rejected' });
  });
  it('falls back when the upstream refuses our key (401, 403): another deployment may hold a good one', () => {
    for (const status of [401, 403]) {
      expect(afterFailure({ kind: 'status', status, message: 'nope', retryable: false }, ctx())).toMatchObject({ kind: 'next-candidate' });
    }
  });
  it('never retries once part of the answer was streamed', () => {
    expect(afterFailure({ ...server, partial: true }, ctx())).toMatchObject({ kind: 'fail', code: 'upstream_failed' });
  });
  it('moves to the next candidate on a protocol failure of this deployment', () => {
    expect(afterFailure({ kind: 'protocol', message: 'no usage', retryable: false }, ctx())).toMatchObject({ kind: 'next-candidate' });
  });
});

describe('countsAgainstDeployment', () => {
  it('counts outages and auth errors, not requests the upstream rejected', () => {
    expect(countsAgainstDeployment(server)).toBe(true);
    expect(countsAgainstDeployment({ kind: 'timeout', message: 't', retryable: true })).toBe(true);
    expect(countsAgainstDeployment({ kind: 'status', status: 401, message: 'x', retryable: false })).toBe(true);
    expect(countsAgainstDeployment({ kind: 'status', status: 400, message: 'x', retryable: false })).toBe(false);
    expect(countsAgainstDeployment({ kind: 'status', status: 404, message: 'x', retryable: false })).toBe(false);
  });
});

describe('pickCandidate', () => {
  const dep: Deployment = { baseUrl: 'http://x/v1', timeoutMs: 1000 };
  const deployments = { a: dep, b: dep, c: dep };
  const candidates = [
    { model: 'm1', deployment: 'a' },
    { model: 'm1', deployment: 'gone' },
    { model: 'm2', deployment: 'b' },
    { model: 'm3', deployment: 'c' },
  ];
  const open: Circuit = { state: 'open', failures: 2, openedAt: 0, trialInFlight: false, transitions: 1 };

  it('takes the first candidate when its circuit is closed', () => {
    expect(pickCandidate(candidates, 0, () => closedCircuit, deployments, 10, settings)).toEqual({ index: 0, circuit: closedCircuit, skipped: [] });
  });
  it('skips open circuits and unconfigured deployments, saying why', () => {
    const circuits: Record<string, Circuit> = { a: open, b: open };
    const p = pickCandidate(candidates, 0, (d) => circuits[d] ?? closedCircuit, deployments, 10, settings);
    expect(p.index).toBe(3);
    expect(p.skipped).toEqual([
      'skipped m1@a: circuit open for another 990 ms',
      'skipped m1@gone: deployment not configured',
      'skipped m2@b: circuit open for another 990 ms',
    ]);
  });
  it('takes the half-open trial once the circuit has been open long enough', () => {
    const p = pickCandidate(candidates, 0, () => open, deployments, 1000, settings);
    expect(p).toMatchObject({ index: 0, circuit: { state: 'half-open', trialInFlight: true } });
  });
  it('returns -1 when nothing is left', () => {
    expect(pickCandidate(candidates, 0, () => open, deployments, 10, settings).index).toBe(-1);
    expect(pickCandidate(candidates, 4, () => closedCircuit, deployments, 10, settings)).toEqual({ index: -1, skipped: [] });
  });
});

describe('exhaustedCode', () => {
  it('says deadline_exceeded only when the deadline passed', () => {
    expect(exhaustedCode(10, 11)).toBe('upstream_failed');
    expect(exhaustedCode(11, 11)).toBe('deadline_exceeded');
  });
  it("says rate_limit_exceeded when the upstream's 429 stopped the last attempt", () => {
    const limited: Failure = { kind: 'status', status: 429, message: 'slow down', retryable: true };
    expect(exhaustedCode(10, 11, limited)).toBe('rate_limit_exceeded');
    expect(exhaustedCode(10, 11, { ...limited, status: 500 })).toBe('upstream_failed');
    expect(exhaustedCode(11, 11, limited)).toBe('deadline_exceeded');
  });
});
